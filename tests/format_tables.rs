//! schema/FORMAT.md §9.10 lists every table of a vault and its columns in a
//! fenced block tagged `tables`. This test checks that list against the
//! migrations of both dialects: every `migrations/<dialect>/V<n>__*.sql`,
//! in version order, read with plain string handling: `CREATE TABLE`
//! column lists, `ALTER TABLE … ADD/DROP/RENAME/CHANGE`, `DROP TABLE`.
//! Table constraints (`PRIMARY KEY`, `FOREIGN KEY`, `UNIQUE`, `KEY`,
//! `INDEX`, `CONSTRAINT`, `CHECK`) are not columns. The migration
//! bookkeeping tables are described in FORMAT.md's prose, not in the block.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Table name → its columns, in order.
type Tables = BTreeMap<String, Vec<String>>;

const DIALECTS: [&str; 2] = ["sqlite", "mysql"];

/// Made by refinery and by medvault's MySQL migration lock, not by the
/// migration files; FORMAT.md §9.8 describes them.
const BOOKKEEPING: [&str; 2] = ["refinery_schema_history", "medvault_migration_guard"];

/// First words of a table constraint inside a column list.
const CONSTRAINT_WORDS: &[&str] = &[
    "PRIMARY",
    "FOREIGN",
    "UNIQUE",
    "KEY",
    "INDEX",
    "CONSTRAINT",
    "CHECK",
    "FULLTEXT",
    "SPATIAL",
];

/// Column types: `key TEXT …` defines a column named `key` (vault_meta has
/// one), while `KEY name (…)` is an index.
const TYPE_WORDS: &[&str] = &[
    "TEXT",
    "BLOB",
    "INTEGER",
    "INT",
    "BIGINT",
    "SMALLINT",
    "TINYINT",
    "MEDIUMINT",
    "REAL",
    "DOUBLE",
    "FLOAT",
    "NUMERIC",
    "DECIMAL",
    "BOOLEAN",
    "BOOL",
    "CHAR",
    "VARCHAR",
    "BINARY",
    "VARBINARY",
    "TINYBLOB",
    "MEDIUMBLOB",
    "LONGBLOB",
    "TINYTEXT",
    "MEDIUMTEXT",
    "LONGTEXT",
    "DATE",
    "DATETIME",
    "TIMESTAMP",
    "TIME",
    "JSON",
];

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn format_md() -> String {
    let path = manifest_dir().join("schema/FORMAT.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `tables` block of FORMAT.md's text: lines `name: column, column, …`.
fn parse_tables_block(md: &str) -> Result<Tables, String> {
    let mut out = Tables::new();
    let mut inside = false;
    let mut found = false;
    for (n, line) in md.lines().enumerate() {
        let l = line.trim_end();
        if !inside {
            if l == "```tables" {
                if found {
                    return Err("FORMAT.md has more than one ```tables block".to_string());
                }
                inside = true;
                found = true;
            }
            continue;
        }
        if l == "```" {
            inside = false;
            continue;
        }
        let l = l.trim();
        if l.is_empty() {
            continue;
        }
        let line_no = n + 1;
        let (name, columns) = l.split_once(':').ok_or_else(|| {
            format!("FORMAT.md line {line_no}: expected `table: column, column, …`, found {l:?}")
        })?;
        let name = name.trim().to_string();
        let columns: Vec<String> = columns.split(',').map(|c| c.trim().to_string()).collect();
        if name.is_empty() || columns.iter().any(|c| c.is_empty()) {
            return Err(format!(
                "FORMAT.md line {line_no}: empty table or column name in {l:?}"
            ));
        }
        if out.insert(name.clone(), columns).is_some() {
            return Err(format!("FORMAT.md lists table {name} twice"));
        }
    }
    if inside {
        return Err("FORMAT.md: the ```tables block is not closed".to_string());
    }
    if !found {
        return Err("FORMAT.md has no ```tables block".to_string());
    }
    Ok(out)
}

/// The statements of an SQL text: comments removed, split on `;` outside
/// quotes, white space collapsed to single spaces.
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            cur.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        let next = chars.peek().copied();
        match c {
            '\'' | '"' | '`' => {
                quote = Some(c);
                cur.push(c);
            }
            '-' if next == Some('-') => {
                // A comment, to the end of the line.
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
                cur.push('\n');
            }
            '/' if next == Some('*') => {
                // A block comment.
                chars.next();
                let mut prev = ' ';
                for d in chars.by_ref() {
                    if prev == '*' && d == '/' {
                        break;
                    }
                    prev = d;
                }
                cur.push(' ');
            }
            ';' => {
                push_statement(&mut out, &cur);
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    push_statement(&mut out, &cur);
    out
}

fn push_statement(out: &mut Vec<String>, text: &str) {
    let s = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if !s.is_empty() {
        out.push(s);
    }
}

/// The first word of `s` (up to white space, `(` or `,`) and the rest.
fn first_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    let end = s
        .find(|c: char| c.is_whitespace() || c == '(' || c == ',')
        .unwrap_or(s.len());
    (&s[..end], s[end..].trim_start())
}

/// `s` after the given words (any case), if it starts with them.
fn strip_words<'a>(s: &'a str, words: &[&str]) -> Option<&'a str> {
    let mut rest = s;
    for &w in words {
        let (first, after) = first_word(rest);
        if !first.eq_ignore_ascii_case(w) {
            return None;
        }
        rest = after;
    }
    Some(rest)
}

/// An identifier without its quotes (`` `key` ``, `"key"`, `[key]`).
fn unquote(s: &str) -> String {
    let s = s.trim();
    let inner = s
        .strip_prefix('`')
        .and_then(|r| r.strip_suffix('`'))
        .or_else(|| s.strip_prefix('"').and_then(|r| r.strip_suffix('"')))
        .or_else(|| s.strip_prefix('[').and_then(|r| r.strip_suffix(']')))
        .unwrap_or(s);
    inner.to_string()
}

/// Byte index of the `)` closing the `(` at byte `open` of `s`.
fn closing_paren(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, c) in s[open..].char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' | '`' => quote = Some(c),
            '(' => depth += 1,
            ')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `s` split on the commas outside parentheses and quotes, each part trimmed.
fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            cur.push(c);
            continue;
        }
        match c {
            '\'' | '"' | '`' => {
                quote = Some(c);
                cur.push(c);
            }
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// The column an item of a column list defines; `None` for a constraint.
fn column_name(item: &str) -> Option<String> {
    let (first, rest) = first_word(item);
    if first.is_empty() {
        return None;
    }
    let quoted = first.starts_with(['`', '"', '[']);
    if !quoted
        && CONSTRAINT_WORDS
            .iter()
            .any(|k| first.eq_ignore_ascii_case(k))
    {
        let (second, _) = first_word(rest);
        if !TYPE_WORDS.iter().any(|t| second.eq_ignore_ascii_case(t)) {
            return None;
        }
    }
    Some(unquote(first))
}

fn no_table(file: &str, table: &str) -> String {
    format!("{file}: ALTER TABLE {table}, but no earlier migration creates {table}")
}

/// Applies one statement to `tables`; statements that change no column
/// list (indexes, inserts, triggers) are ignored.
fn apply(tables: &mut Tables, stmt: &str, file: &str) -> Result<(), String> {
    if let Some(rest) = strip_words(stmt, &["CREATE", "TABLE"]) {
        let rest = strip_words(rest, &["IF", "NOT", "EXISTS"]).unwrap_or(rest);
        let open = rest
            .find('(')
            .ok_or_else(|| format!("{file}: CREATE TABLE without a column list: {stmt}"))?;
        let name = unquote(&rest[..open]);
        let close = closing_paren(rest, open)
            .ok_or_else(|| format!("{file}: unbalanced parentheses in CREATE TABLE {name}"))?;
        let columns: Vec<String> = split_top_level(&rest[open + 1..close])
            .iter()
            .filter_map(|item| column_name(item.as_str()))
            .collect();
        if tables.insert(name.clone(), columns).is_some() {
            return Err(format!("{file}: table {name} is created twice"));
        }
    } else if let Some(rest) = strip_words(stmt, &["ALTER", "TABLE"]) {
        let rest = strip_words(rest, &["IF", "EXISTS"]).unwrap_or(rest);
        let (name, clauses) = first_word(rest);
        let mut name = unquote(name);
        for clause in split_top_level(clauses) {
            name = alter(tables, &name, &clause, file)?;
        }
    } else if let Some(rest) = strip_words(stmt, &["DROP", "TABLE"]) {
        let rest = strip_words(rest, &["IF", "EXISTS"]).unwrap_or(rest);
        for t in rest.split(',') {
            tables.remove(&unquote(t));
        }
    }
    Ok(())
}

/// Applies one clause of `ALTER TABLE table …`; returns the table's name
/// afterwards (`RENAME TO` changes it).
fn alter(tables: &mut Tables, table: &str, clause: &str, file: &str) -> Result<String, String> {
    let (verb, rest) = first_word(clause);
    let verb = verb.to_ascii_uppercase();
    if verb == "RENAME" {
        let (w, after) = first_word(rest);
        if w.eq_ignore_ascii_case("TO") || w.eq_ignore_ascii_case("AS") {
            let new = unquote(first_word(after).0);
            let columns = tables.remove(table).ok_or_else(|| no_table(file, table))?;
            tables.insert(new.clone(), columns);
            return Ok(new);
        }
    }
    let columns = tables.get_mut(table).ok_or_else(|| no_table(file, table))?;
    match verb.as_str() {
        "ADD" => {
            let (w, after) = first_word(rest);
            let explicit = w.eq_ignore_ascii_case("COLUMN");
            let def = if explicit { after } else { rest };
            let def = strip_words(def, &["IF", "NOT", "EXISTS"]).unwrap_or(def);
            if def.starts_with('(') {
                // MySQL: ADD (column definition, …)
                let close = closing_paren(def, 0).ok_or_else(|| {
                    format!("{file}: unbalanced parentheses in ALTER TABLE {table}")
                })?;
                columns.extend(
                    split_top_level(&def[1..close])
                        .iter()
                        .filter_map(|item| column_name(item.as_str())),
                );
            } else if explicit {
                columns.push(unquote(first_word(def).0));
            } else if let Some(c) = column_name(def) {
                // ADD name type …; ADD INDEX/KEY/UNIQUE/… adds no column.
                columns.push(c);
            }
        }
        "DROP" => {
            let (w, after) = first_word(rest);
            let target = if w.eq_ignore_ascii_case("COLUMN") {
                Some(after)
            } else if CONSTRAINT_WORDS.iter().any(|k| w.eq_ignore_ascii_case(k)) {
                None
            } else {
                Some(rest)
            };
            if let Some(t) = target {
                let t = strip_words(t, &["IF", "EXISTS"]).unwrap_or(t);
                let gone = unquote(first_word(t).0);
                columns.retain(|c| *c != gone);
            }
        }
        "RENAME" => {
            // RENAME [COLUMN] old TO new; RENAME INDEX/KEY changes no column.
            let (w, after) = first_word(rest);
            let renames_an_index = w.eq_ignore_ascii_case("INDEX") || w.eq_ignore_ascii_case("KEY");
            if !renames_an_index {
                let spec = if w.eq_ignore_ascii_case("COLUMN") {
                    after
                } else {
                    rest
                };
                let (old, tail) = first_word(spec);
                let tail = strip_words(tail, &["TO"]).unwrap_or(tail);
                rename(columns, &unquote(old), unquote(first_word(tail).0));
            }
        }
        "CHANGE" => {
            // MySQL: CHANGE [COLUMN] old new definition.
            let (w, after) = first_word(rest);
            let spec = if w.eq_ignore_ascii_case("COLUMN") {
                after
            } else {
                rest
            };
            let (old, tail) = first_word(spec);
            rename(columns, &unquote(old), unquote(first_word(tail).0));
        }
        // MODIFY, ALTER COLUMN, table options: no column added or removed.
        _ => {}
    }
    Ok(table.to_string())
}

fn rename(columns: &mut [String], old: &str, new: String) {
    for c in columns.iter_mut() {
        if c.as_str() == old {
            *c = new.clone();
        }
    }
}

/// The tables the migrations of `dialect` make, bookkeeping tables left out.
fn migration_tables(dialect: &str) -> Result<Tables, String> {
    let dir = manifest_dir().join("migrations").join(dialect);
    let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<(u32, String, PathBuf)> = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !name.ends_with(".sql") {
            continue;
        }
        let version = name
            .strip_prefix('V')
            .and_then(|r| r.split_once("__"))
            .and_then(|(n, _)| n.parse::<u32>().ok())
            .ok_or_else(|| format!("migrations/{dialect}/{name}: expected V<n>__<name>.sql"))?;
        files.push((version, name, path));
    }
    if files.is_empty() {
        return Err(format!("migrations/{dialect}: no migration files"));
    }
    files.sort();
    let mut tables = Tables::new();
    for (_, name, path) in &files {
        let sql = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file = format!("migrations/{dialect}/{name}");
        for stmt in statements(&sql) {
            apply(&mut tables, &stmt, &file)?;
        }
    }
    for b in BOOKKEEPING {
        tables.remove(b);
    }
    Ok(tables)
}

/// Every difference between FORMAT.md's list and the migrations, one
/// message each, naming the dialect, the table and the columns.
fn differences(dialect: &str, listed: &Tables, migrations: &Tables) -> Vec<String> {
    let mut out = Vec::new();
    for t in migrations.keys().filter(|t| !listed.contains_key(*t)) {
        out.push(format!(
            "{dialect}: table `{t}` is made by the migrations but missing from FORMAT.md's tables block"
        ));
    }
    for t in listed.keys().filter(|t| !migrations.contains_key(*t)) {
        out.push(format!(
            "{dialect}: table `{t}` is in FORMAT.md's tables block but no migration makes it"
        ));
    }
    for (t, doc) in listed {
        let Some(real) = migrations.get(t) else {
            continue;
        };
        if doc == real {
            continue;
        }
        let missing: Vec<&str> = real
            .iter()
            .filter(|c| !doc.contains(c))
            .map(String::as_str)
            .collect();
        let extra: Vec<&str> = doc
            .iter()
            .filter(|c| !real.contains(c))
            .map(String::as_str)
            .collect();
        let mut what = Vec::new();
        if !missing.is_empty() {
            what.push(format!("missing from FORMAT.md: {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            what.push(format!("not in the migrations: {}", extra.join(", ")));
        }
        if what.is_empty() {
            what.push("the same columns in another order".to_string());
        }
        out.push(format!(
            "{dialect}: table `{t}`: {}\n    FORMAT.md:  {}\n    migrations: {}",
            what.join("; "),
            doc.join(", "),
            real.join(", ")
        ));
    }
    out
}

#[test]
fn format_md_lists_the_tables_and_columns_of_both_dialects() {
    let listed = parse_tables_block(&format_md()).unwrap_or_else(|e| panic!("{e}"));
    let mut problems = Vec::new();
    for dialect in DIALECTS {
        match migration_tables(dialect) {
            Ok(tables) => problems.extend(differences(dialect, &listed, &tables)),
            Err(e) => problems.push(e),
        }
    }
    assert!(
        problems.is_empty(),
        "schema/FORMAT.md §9.10 (the ```tables block) and the migrations disagree:\n{}",
        problems.join("\n")
    );
}

/// The check can fail: a copy of FORMAT.md whose block lost a column is
/// caught, in both dialects, with a message naming table and column.
#[test]
fn a_column_missing_from_the_block_is_caught() {
    let md = format_md();
    let users = "\nusers: name, role, status, cert, locked_key, certifier, signed_at, signature\n";
    let altered_md = md.replacen(
        users,
        "\nusers: name, role, status, cert, certifier, signed_at, signature\n",
        1,
    );
    assert_ne!(
        altered_md, md,
        "the users line of FORMAT.md's tables block changed; update this test"
    );
    let listed = parse_tables_block(&md).unwrap_or_else(|e| panic!("{e}"));
    let altered = parse_tables_block(&altered_md).unwrap_or_else(|e| panic!("{e}"));
    assert!(differences("same", &listed, &listed).is_empty());
    for dialect in DIALECTS {
        let tables = migration_tables(dialect).unwrap_or_else(|e| panic!("{e}"));
        let problems = differences(dialect, &altered, &tables);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("table `users`")
                    && p.contains("missing from FORMAT.md: locked_key")),
            "{dialect}: the removed column went unnoticed: {problems:?}"
        );
    }
}

/// The SQL reader on the forms the migrations use or may use.
#[test]
fn the_sql_reader_tells_columns_from_constraints() {
    let sql = "-- a comment; with a semicolon\n\
        CREATE TABLE IF NOT EXISTS t (\n\
            key   TEXT PRIMARY KEY NOT NULL, -- a column named key\n\
            `value` VARBINARY(32) NOT NULL,\n\
            n     INTEGER NOT NULL CHECK (n IN (1, 2)),\n\
            PRIMARY KEY (key, n),\n\
            KEY t_value (`value`),\n\
            UNIQUE (n),\n\
            CONSTRAINT c CHECK (n > 0),\n\
            FOREIGN KEY (n) REFERENCES u (id)\n\
        ) ENGINE = InnoDB;\n\
        /* a block; comment */ CREATE INDEX t_n ON t (n);\n\
        ALTER TABLE t ADD COLUMN seq BIGINT NOT NULL AUTO_INCREMENT UNIQUE;\n\
        ALTER TABLE t ADD extra TEXT, ADD INDEX t_extra (extra);\n\
        ALTER TABLE t DROP COLUMN extra;\n\
        CREATE TABLE gone (a INTEGER);\n\
        DROP TABLE gone;\n\
        CREATE TABLE old_name (a INTEGER, b TEXT);\n\
        ALTER TABLE old_name RENAME COLUMN b TO c;\n\
        ALTER TABLE old_name RENAME TO renamed;\n";
    let mut tables = Tables::new();
    for stmt in statements(sql) {
        apply(&mut tables, &stmt, "sample").unwrap_or_else(|e| panic!("{e}"));
    }
    let want: Tables = [
        (
            "t".to_string(),
            vec![
                "key".to_string(),
                "value".to_string(),
                "n".to_string(),
                "seq".to_string(),
            ],
        ),
        (
            "renamed".to_string(),
            vec!["a".to_string(), "c".to_string()],
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(tables, want);
}
