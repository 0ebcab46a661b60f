//! The `medvault` command: the flow of the README, errors with a hint and
//! a non-zero status, and no secret or patient value in error output.

use assert_cmd::Command;

struct Cli {
    dir: tempfile::TempDir,
}

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Cli {
    fn new() -> Cli {
        Cli {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn store(&self) -> String {
        format!("sqlcipher:{}", self.dir.path().join("clinic.db").display())
    }

    fn run(&self, user: &str, pw: &str, args: &[&str]) -> Out {
        self.run_stdin(user, pw, args, "")
    }

    fn ok(&self, user: &str, pw: &str, args: &[&str]) -> String {
        let o = self.run(user, pw, args);
        assert!(o.ok, "{args:?} failed: {}", o.stderr);
        o.stdout
    }

    fn fails(&self, user: &str, pw: &str, args: &[&str], msg: &str) -> Out {
        let o = self.run(user, pw, args);
        assert!(!o.ok, "{args:?} should fail");
        assert!(
            o.stderr.contains(msg),
            "{args:?}: stderr {:?} lacks {msg:?}",
            o.stderr
        );
        assert!(
            o.stderr.contains("hint: "),
            "{args:?}: no hint in {:?}",
            o.stderr
        );
        o
    }

    /// `passwd` for `user` from `pw` to `new` (MEDVAULT_NEW_PASSWORD).
    fn passwd(&self, user: &str, pw: &str, new: &str) -> Out {
        self.with_env(
            &[
                ("MEDVAULT_USER", user),
                ("MEDVAULT_PASSWORD", pw),
                ("MEDVAULT_NEW_PASSWORD", new),
            ],
            &["passwd"],
            "",
        )
    }

    /// The command on this store with only `env` set (no user unless it
    /// names one), `input` on standard input.
    fn with_env(&self, env: &[(&str, &str)], args: &[&str], input: &str) -> Out {
        let mut cmd = Command::cargo_bin("medvault").unwrap();
        cmd.env_clear().env("MEDVAULT_STORE", self.store());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd
            .arg("--danger-fast-kdf")
            .args(args)
            .write_stdin(input)
            .output()
            .unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    fn files(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap() {
            all.extend(std::fs::read(e.unwrap().path()).unwrap_or_default());
        }
        all
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn readme_flow() {
    let c = Cli::new();
    let init = c.ok("alice", "alice pw", &["init"]);
    let shares: Vec<&str> = init
        .lines()
        .filter_map(|l| l.trim().strip_prefix("share "))
        .map(|l| l.split_once(": ").unwrap().1)
        .collect();
    assert_eq!(shares.len(), 4, "{init}");
    assert!(init.contains("Root key fingerprint"));

    // bob makes his own key from alice's invitation; she certifies it.
    let inv = c.dir.path().join("bob.invitation");
    let req = c.dir.path().join("bob.request");
    c.ok(
        "alice",
        "alice pw",
        &["user", "invite", "bob", "--out", inv.to_str().unwrap()],
    );
    let out = Command::cargo_bin("medvault")
        .unwrap()
        .env_clear()
        .env("MEDVAULT_NEW_PASSWORD", "bob pw")
        .args([
            "--danger-fast-kdf",
            "enrol",
            "--invitation",
            inv.to_str().unwrap(),
            "--out",
            req.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let told = String::from_utf8_lossy(&out.stderr).to_string();
    let certified = c.ok(
        "alice",
        "alice pw",
        &["user", "certify", req.to_str().unwrap()],
    );
    let fpr = certified
        .trim()
        .rsplit("key ")
        .next()
        .unwrap()
        .trim_end_matches(')');
    assert!(
        certified.contains("certified user bob") && told.contains(fpr),
        "{certified} / {told}"
    );
    // Once only.
    c.fails(
        "alice",
        "alice pw",
        &["user", "certify", req.to_str().unwrap()],
        "exists already",
    );
    c.ok("alice", "alice pw", &["grant", "bob", "identity"]);

    let id = c.ok(
        "alice",
        "alice pw",
        &[
            "patient",
            "add",
            "--family",
            "Dupont",
            "--given",
            "Hélène",
            "--born",
            "1970-03-02",
            "--sex",
            "F",
        ],
    );
    let id = id.trim();
    assert_eq!(id.len(), 32, "{id}");
    let found = c.ok(
        "bob",
        "bob pw",
        &[
            "--json",
            "patient",
            "find",
            "--family",
            "DUPONT",
            "--born",
            "1970-03-02",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&found).unwrap();
    assert_eq!(v[0]["id"], id);
    assert_eq!(v[0]["given_names"], "Hélène");
    let shown = c.ok("bob", "bob pw", &["patient", "show", id]);
    assert!(
        shown.contains("Dupont, Hélène") && shown.contains("1970-03-02"),
        "{shown}"
    );
    let listed: serde_json::Value = serde_json::from_str(&c.ok(
        "bob",
        "bob pw",
        &["--json", "patient", "list", "--limit", "10"],
    ))
    .unwrap();
    assert_eq!(listed["patients"].as_array().unwrap().len(), 1);

    c.ok(
        "alice",
        "alice pw",
        &["note", "add", id, "--text", "Penicillin allergy"],
    );
    c.ok(
        "alice",
        "alice pw",
        &[
            "note",
            "add",
            id,
            "--text",
            "Invoice sent",
            "--scope",
            "billing",
        ],
    );
    let notes = c.ok("alice", "alice pw", &["note", "list", id]);
    assert!(
        notes.contains("[clinical] alice") && notes.contains("Penicillin allergy"),
        "{notes}"
    );
    let bobs = c.ok("bob", "bob pw", &["note", "list", id]);
    assert!(
        bobs.contains("2 note(s) in scopes you hold no key for"),
        "{bobs}"
    );
    assert!(!bobs.contains("Penicillin"));
    c.fails(
        "bob",
        "bob pw",
        &["note", "list", id, "--scope", "clinical"],
        "no access to scope \"clinical\"",
    );
    // Read-only: bob reads the clinical notes and writes none.
    let granted = c.ok(
        "alice",
        "alice pw",
        &["grant", "bob", "clinical", "--read-only"],
    );
    assert!(granted.contains("(read)"), "{granted}");
    let access = c.ok("alice", "alice pw", &["scope", "access", "clinical"]);
    assert!(
        access
            .lines()
            .any(|l| l.starts_with("alice") && l.ends_with("read-write"))
            && access
                .lines()
                .any(|l| l.starts_with("bob") && l.ends_with(" read")),
        "{access}"
    );
    let bobs = c.ok("bob", "bob pw", &["note", "list", id]);
    assert!(bobs.contains("Penicillin allergy"), "{bobs}");
    c.fails(
        "bob",
        "bob pw",
        &["note", "add", id, "--text", "Not allowed"],
        "for reading only",
    );

    let users = c.ok("alice", "alice pw", &["user", "list"]);
    assert!(
        users.contains("alice") && users.contains("bob") && users.contains("verified"),
        "{users}"
    );
    let revoked = c.ok("alice", "alice pw", &["revoke", "bob", "identity"]);
    assert!(
        revoked.contains("revoked identity from bob")
            && revoked.contains("rotated identity to key epoch 2: 1 rows sealed again")
            && revoked.contains("retired epoch 1"),
        "{revoked}"
    );
    let rotated = c.ok(
        "alice",
        "alice pw",
        &["rotate", "identity", "--batch-rows", "1"],
    );
    assert!(
        rotated.contains("rotated identity to key epoch 3") && rotated.contains("retired epoch 2"),
        "{rotated}"
    );
    c.fails(
        "alice",
        "alice pw",
        &["rotate", "nope"],
        "unknown scope \"nope\"",
    );
    c.fails(
        "bob",
        "bob pw",
        &["patient", "show", id],
        "no access to scope \"identity\"",
    );
    c.ok("alice", "alice pw", &["user", "disable", "bob"]);
    c.fails(
        "bob",
        "bob pw",
        &["patient", "list"],
        "user \"bob\" is disabled",
    );

    // Recovery shares from init, through standard input.
    let out = Command::cargo_bin("medvault")
        .unwrap()
        .env_clear()
        .env("MEDVAULT_STORE", c.store())
        .env("MEDVAULT_USER", "alice")
        .env("MEDVAULT_PASSWORD", "alice pw")
        .args(["recovery", "check"])
        .write_stdin(format!("{}\n{}\n", shares[2], shares[0]))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("rebuild the root key"));

    for marker in ["Dupont", "Hélène", "1970-03-02", "Penicillin"] {
        assert!(!contains(&c.files(), marker), "{marker} in the vault files");
    }
}

#[test]
fn errors_are_clear_and_carry_a_hint() {
    let c = Cli::new();
    c.fails("alice", "pw", &["patient", "list"], "no vault at");
    c.ok("alice", "alice pw", &["init"]);
    c.fails(
        "alice",
        "wrong",
        &["patient", "list"],
        "wrong password for user \"alice\"",
    );
    c.fails(
        "nobody",
        "x",
        &["patient", "list"],
        "unknown user \"nobody\"",
    );
    c.fails(
        "alice",
        "alice pw",
        &["patient", "show", "xyz"],
        "is not a medvault id",
    );
    c.fails(
        "alice",
        "alice pw",
        &["patient", "find"],
        "needs at least one of",
    );
    c.fails(
        "alice",
        "alice pw",
        &["grant", "alice", "nope"],
        "unknown scope",
    );
    c.fails("alice", "alice pw", &["init"], "exists already");

    let o = Command::cargo_bin("medvault")
        .unwrap()
        .env_clear()
        .args(["patient", "list"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--store"));

    // --batch never prompts.
    let o = Command::cargo_bin("medvault")
        .unwrap()
        .env_clear()
        .env("MEDVAULT_STORE", c.store())
        .args(["--batch", "--user", "alice", "patient", "list"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("prompting is not possible") && err.contains("--password-file"),
        "{err}"
    );

    // A password file works.
    let pwf = c.dir.path().join("pw.txt");
    std::fs::write(&pwf, "alice pw\n").unwrap();
    let o = Command::cargo_bin("medvault")
        .unwrap()
        .env_clear()
        .env("MEDVAULT_STORE", c.store())
        .args(["--batch", "--user", "alice", "--password-file"])
        .arg(&pwf)
        .args(["patient", "list"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn error_output_carries_no_patient_data_and_no_sqlcipher_log() {
    let c = Cli::new();
    c.ok("alice", "alice pw", &["init"]);
    let o = c.fails(
        "alice",
        "alice pw",
        &[
            "patient",
            "add",
            "--family",
            "Markerfamily",
            "--given",
            "Markergiven",
            "--born",
            "1933-13-45",
        ],
        "date of birth is not a calendar date",
    );
    for m in ["Markerfamily", "Markergiven", "1933-13-45"] {
        assert!(
            !o.stderr.contains(m) && !o.stdout.contains(m),
            "{m} printed"
        );
    }
    let o = c.fails(
        "alice",
        "alice pw wrong",
        &["patient", "list"],
        "wrong password",
    );
    assert!(!o.stderr.contains("alice pw wrong"), "password echoed");

    // Another vault's keyring beside this database: SQLCipher fails its
    // page check, and prints nothing of its own.
    let other = Cli::new();
    other.ok("alice", "alice pw", &["init"]);
    std::fs::copy(
        other.dir.path().join("clinic.db.keyring"),
        c.dir.path().join("clinic.db.keyring"),
    )
    .unwrap();
    let o = c.fails(
        "alice",
        "alice pw",
        &["patient", "list"],
        "cannot be opened with this key",
    );
    assert!(
        !o.stderr.to_lowercase().contains("hmac"),
        "SQLCipher log leaked: {}",
        o.stderr
    );
    assert_eq!(
        o.stderr.lines().count(),
        2,
        "one error line and one hint: {}",
        o.stderr
    );
}

mod common;

/// The shared-server flow: init prints the root to pin, clients pin it
/// with MEDVAULT_ROOT, copy makes a backup file, verify checks it.
#[tokio::test]
async fn mysql_flow_with_copy_and_verify() {
    let (url, _guard) = common::empty_mysql().await;
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], root: Option<&str>| {
        let mut c = Command::cargo_bin("medvault").unwrap();
        c.env_clear()
            .env("MEDVAULT_STORE", &url)
            .env("MEDVAULT_USER", "alice")
            .env("MEDVAULT_PASSWORD", "alice pw")
            .arg("--danger-fast-kdf")
            .args(args);
        if let Some(r) = root {
            c.env("MEDVAULT_ROOT", r);
        }
        c.output().unwrap()
    };
    let init = run(&["--json", "init"], None);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&init.stdout).unwrap();
    let root = v["root_fingerprint"].as_str().unwrap().to_owned();

    let unpinned = run(&["patient", "list"], None);
    assert!(!unpinned.status.success());
    assert!(String::from_utf8_lossy(&unpinned.stderr).contains("MEDVAULT_ROOT"));

    let add = run(
        &[
            "patient",
            "add",
            "--family",
            "Dupont",
            "--given",
            "Hélène",
            "--born",
            "1970-03-02",
        ],
        Some(&root),
    );
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let found = run(&["patient", "find", "--family", "dupont"], Some(&root));
    assert!(String::from_utf8_lossy(&found.stdout).contains("Dupont, Hélène"));

    let backup = format!("sqlcipher:{}", dir.path().join("backup.db").display());
    let copy = run(&["copy", "--from", &url, "--to", &backup], Some(&root));
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    assert!(String::from_utf8_lossy(&copy.stdout).contains("without decrypting any field"));
    let verify = run(&["--store", &backup, "verify"], None);
    let out = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "{out} {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        out.contains("fields decrypted") && !out.contains("PROBLEM"),
        "{out}"
    );
}

impl Cli {
    /// Runs with `input` on standard input.
    fn run_stdin(&self, user: &str, pw: &str, args: &[&str], input: &str) -> Out {
        let out = Command::cargo_bin("medvault")
            .unwrap()
            .env_clear()
            .env("MEDVAULT_STORE", self.store())
            .env("MEDVAULT_USER", user)
            .env("MEDVAULT_PASSWORD", pw)
            .arg("--danger-fast-kdf")
            .args(args)
            .write_stdin(input)
            .output()
            .unwrap();
        Out {
            ok: out.status.success(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }
}

/// Patient data need not be on the command line (shell history, `ps`):
/// a patient and a query as JSON from standard input or a file, a note's
/// text from standard input or a file. A bad document is an error that
/// does not quote it.
#[test]
fn patient_data_from_standard_input_or_a_file() {
    let c = Cli::new();
    c.ok("admin", "pw", &["init"]);
    let doc = r#"{"family_name": "Saint-Pierre", "given_names": "Hélène", "born": "1970-03-02", "sex": "F"}"#;
    let o = c.run_stdin("admin", "pw", &["patient", "add", "--from", "-"], doc);
    assert!(o.ok, "{}", o.stderr);
    let id = o.stdout.trim().to_owned();
    let q = c.dir.path().join("query.json");
    std::fs::write(&q, r#"{"family_name": "saint pierre"}"#).unwrap();
    let found = c.ok(
        "admin",
        "pw",
        &["--json", "patient", "find", "--from", q.to_str().unwrap()],
    );
    assert!(found.contains(&id) && found.contains("Hélène"), "{found}");

    let o = c.run_stdin(
        "admin",
        "pw",
        &["note", "add", &id, "--text", "-"],
        "Penicillin allergy.\nSecond line.",
    );
    assert!(o.ok, "{}", o.stderr);
    let note = c.dir.path().join("note.txt");
    std::fs::write(&note, "Follow-up in May.").unwrap();
    c.ok(
        "admin",
        "pw",
        &["note", "add", &id, "--text-file", note.to_str().unwrap()],
    );
    let notes = c.ok("admin", "pw", &["note", "list", &id]);
    assert!(
        notes.contains("Penicillin allergy.\nSecond line.") && notes.contains("Follow-up in May."),
        "{notes}"
    );

    // A document with a value of the wrong type: the error names the line
    // and column, not the value.
    let bad = r#"{"family_name": "Quaresma", "given_names": 7, "born": "1970-03-02"}"#;
    let o = c.run_stdin("admin", "pw", &["patient", "add", "--from", "-"], bad);
    assert!(!o.ok);
    assert!(o.stderr.contains("line 1"), "{}", o.stderr);
    assert!(!o.stderr.contains("Quaresma"), "{}", o.stderr);
    // Flags and a document together are refused by the parser.
    let o = c.run_stdin(
        "admin",
        "pw",
        &["patient", "add", "--from", "-", "--family", "X"],
        doc,
    );
    assert!(!o.ok);
}

/// `schema plan` works offline: per index its classes and the rows sharing
/// each value, per row what its index values reveal side by side (the
/// built-in patients' single a row out, and say so).
#[test]
fn schema_plan_prints_what_the_server_learns() {
    let c = Cli::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/emr/schema.toml");
    let out = c.ok("", "", &["schema", "plan", example]);
    assert!(out.contains("patients (100000 rows)"), "{out}");
    assert!(out.contains("SINGLE A ROW OUT"), "{out}");
    let year = out
        .lines()
        .find(|l| l.trim_start().starts_with("bi_born_year"))
        .unwrap_or_default();
    assert!(year.contains(" year ") && year.contains(" 120 "), "{out}");
    let out = c.ok(
        "",
        "",
        &["--json", "schema", "plan", example, "--population", "20000"],
    );
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let table = |name: &str| {
        plan.as_array()
            .unwrap()
            .iter()
            .find(|t| t["table"] == name)
            .unwrap()
            .clone()
    };
    let allergies = table("allergies");
    assert_eq!(allergies["population"], 20000);
    assert_eq!(allergies["indexes"][0]["classes"], 4096.0);
    assert_eq!(allergies["singles_out"], false);
    assert_eq!(table("patients")["singles_out"], true);
    c.fails(
        "",
        "",
        &["schema", "plan", example, "--population", "0"],
        "at least 1 row",
    );
}

/// `schema check` and `schema ddl` work offline on an application's file:
/// a valid file says what it adds, a bad one lists each problem with its
/// line and fails, and the SQL of a declared table is printed per dialect.
#[test]
fn schema_check_and_ddl() {
    let c = Cli::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/emr/schema.toml");
    let out = c.ok("", "", &["schema", "check", example]);
    assert!(out.contains("add table appointments"), "{out}");
    assert!(
        out.contains("add column patients.insurance_number"),
        "{out}"
    );

    let text = std::fs::read_to_string(example).unwrap();
    let bad = text
        .replacen("scope = \"clinical\"", "scope = \"clinicl\"", 1)
        .replace("column = \"bi_drug\"", "column = \"bi-drug\"");
    let o = c.run_stdin("", "", &["schema", "check", "-"], &bad);
    assert!(!o.ok);
    let line = |needle: &str| bad.lines().position(|l| l.contains(needle)).unwrap() + 1;
    assert!(
        o.stderr.contains(&format!(
            "line {}: unknown scope \"clinicl\"",
            line("clinicl")
        )),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains(&format!(
            "line {}: index column name \"bi-drug\"",
            line("bi-drug")
        )),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("hint: "), "{}", o.stderr);

    let out = c.ok(
        "",
        "",
        &[
            "schema",
            "ddl",
            "appointments",
            "--schema",
            example,
            "--dialect",
            "mysql",
        ],
    );
    assert!(out.contains("`scope_id` INT UNSIGNED NOT NULL"), "{out}");
    assert!(out.contains("`reason` BLOB NOT NULL"), "{out}");
    assert!(!out.contains("-- sqlite"), "{out}");
    let out = c.ok("", "", &["schema", "ddl", "patients"]);
    assert!(
        out.contains("-- sqlite") && out.contains("-- mysql"),
        "{out}"
    );
    c.fails(
        "",
        "",
        &["schema", "ddl", "allergies"],
        "no table \"allergies\"",
    );

    // Applied to a vault: printed, signed, shown; a second apply is a no-op.
    c.ok("admin", "pw", &["init"]);
    let out = c.ok("admin", "pw", &["schema", "apply", "--dry-run", example]);
    assert!(out.contains("would change (5)"), "{out}");
    assert!(c
        .ok("admin", "pw", &["schema", "show"])
        .contains("schema version 0"));
    let out = c.ok("admin", "pw", &["schema", "apply", example]);
    assert!(
        out.contains("schema version 1 is in force, signed by admin"),
        "{out}"
    );
    let out = c.ok("admin", "pw", &["schema", "apply", example]);
    assert!(out.contains("nothing to change"), "{out}");
    let out = c.ok("admin", "pw", &["schema", "show"]);
    assert!(out.contains("schema version 1, applied by admin"), "{out}");
    assert!(
        out.contains("tables: patients, notes, allergies, prescriptions, appointments"),
        "{out}"
    );
    assert!(out.contains("column = \"insurance_number\""), "{out}");
    // Every table with its columns and types, built-in ones included.
    assert!(
        out.contains(
            "  substance                encrypted text, scope clinical, at most 200 bytes"
        ),
        "{out}"
    );
    assert!(
        out.contains("  born                     encrypted partial date, scope identity"),
        "{out}"
    );
    assert!(
        out.contains("  bi_substance             blind index over (substance), 12 bits"),
        "{out}"
    );
}

/// `row` commands on an application table: insert from arguments and from
/// standard input, get, find, list children, update, delete; JSON output;
/// typed errors with a hint that do not quote the value.
#[test]
fn rows_through_the_cli() {
    let c = Cli::new();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/emr/schema.toml");
    c.ok("admin", "pw", &["init"]);
    c.ok("admin", "pw", &["schema", "apply", example]);
    let p = c.ok(
        "admin",
        "pw",
        &[
            "patient",
            "add",
            "--family",
            "Dupont",
            "--given",
            "Jean",
            "--born",
            "1970-03-02",
        ],
    );
    let p = p.trim();
    let a = c.ok(
        "admin",
        "pw",
        &[
            "row",
            "insert",
            "allergies",
            "--parent",
            p,
            "substance=Penicillin",
            "reaction=Hives",
            "recorded_on=2019-05",
        ],
    );
    let a = a.trim();
    let doc = format!(
        r#"{{"parent": "{p}", "substance": "Latex", "reaction": "Rash", "recorded_on": "2020"}}"#
    );
    let o = c.run_stdin(
        "admin",
        "pw",
        &["row", "insert", "allergies", "--from", "-"],
        &doc,
    );
    assert!(o.ok, "{}", o.stderr);
    let out = c.ok(
        "admin",
        "pw",
        &["--json", "row", "find", "allergies", "substance=PENICILLIN"],
    );
    let found: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(found[0]["id"], a);
    assert_eq!(found[0]["substance"], "Penicillin");
    let out = c.ok("admin", "pw", &["row", "list", "allergies", "--parent", p]);
    assert_eq!(out.lines().count(), 2, "{out}");
    c.ok(
        "admin",
        "pw",
        &["row", "update", "allergies", a, "reaction=Anaphylaxis"],
    );
    let out = c.ok("admin", "pw", &["row", "get", "allergies", a]);
    assert!(out.contains("reaction=Anaphylaxis"), "{out}");
    c.fails(
        "admin",
        "pw",
        &["row", "find", "allergies", "reaction=Rash"],
        "no blind index",
    );
    // The built-in year index on the patients' dates of birth, and a
    // month index the application adds (filled by the apply): found by
    // year and by month, and a query of the wrong form is refused.
    let dated = c.dir.path().join("dated.toml");
    std::fs::write(
        &dated,
        format!(
            "{}\n[[index]]\ntable = \"patients\"\ncolumn = \"bi_born_month\"\n\
             over = [\"born\"]\nkind = \"year-month\"\nbits = 15\n",
            std::fs::read_to_string(example).unwrap()
        ),
    )
    .unwrap();
    c.ok("admin", "pw", &["schema", "apply", dated.to_str().unwrap()]);
    let out = c.ok("admin", "pw", &["schema", "show"]);
    assert!(
        out.contains("  bi_born_year             year blind index over (born), 8 bits"),
        "{out}"
    );
    assert!(
        out.contains("  bi_born_month            year-month blind index over (born), 15 bits"),
        "{out}"
    );
    let out = c.ok(
        "admin",
        "pw",
        &[
            "--json",
            "row",
            "find",
            "patients",
            "--year-month",
            "born=1970-03",
        ],
    );
    let found: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(found[0]["id"], p);
    let out = c.ok(
        "admin",
        "pw",
        &["--json", "patient", "find", "--born-year", "1970"],
    );
    let found: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(found[0]["id"], p);
    let out = c.ok(
        "admin",
        "pw",
        &["--json", "row", "find", "patients", "--year", "born=1970"],
    );
    let found: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(found[0]["id"], p);
    let out = c.ok(
        "admin",
        "pw",
        &["--json", "row", "find", "patients", "--year", "born=1971"],
    );
    assert_eq!(out.trim(), "[]");
    // The built-in phonetic index on family names: Dupond finds Dupont,
    // from the desk and through the table; Martin does not.
    for args in [
        &["--json", "patient", "find", "--sounds-like", "dupond"][..],
        &[
            "--json",
            "row",
            "find",
            "patients",
            "--sounds-like",
            "family_name=Dupond",
        ],
    ] {
        let out = c.ok("admin", "pw", args);
        let found: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(found.as_array().map(Vec::len), Some(1), "{out}");
        assert_eq!(found[0]["id"], p);
    }
    let out = c.ok(
        "admin",
        "pw",
        &["--json", "patient", "find", "--sounds-like", "Martin"],
    );
    assert_eq!(out.trim(), "[]");
    c.fails(
        "admin",
        "pw",
        &["patient", "find", "--sounds-like", "\u{4e2d}\u{6587}"],
        "a letter a..z",
    );
    c.fails(
        "admin",
        "pw",
        &["row", "find", "patients", "--sounds-like", "born=1970"],
        "no blind index",
    );
    // The built-in prefix index: the first letters find Dupont, from the
    // desk and through the table; fewer than 3 are refused.
    for args in [
        &["--json", "patient", "find", "--family-prefix", "dup"][..],
        &["--json", "patient", "find", "--family-prefix", "DU PON"][..],
        &[
            "--json",
            "row",
            "find",
            "patients",
            "--prefix",
            "family_name=Dupo",
        ],
    ] {
        let out = c.ok("admin", "pw", args);
        let found: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(found.as_array().map(Vec::len), Some(1), "{out}");
        assert_eq!(found[0]["id"], p);
    }
    let out = c.ok(
        "admin",
        "pw",
        &["--json", "patient", "find", "--family-prefix", "dupb"],
    );
    assert_eq!(out.trim(), "[]");
    c.fails(
        "admin",
        "pw",
        &["patient", "find", "--family-prefix", "du"],
        "searched by at least 3 characters",
    );
    c.fails(
        "admin",
        "pw",
        &["row", "find", "patients", "--prefix", "born=1970"],
        "no blind index",
    );
    // The built-in tokens index: one given name finds the patient, from
    // the desk and through the table; another does not.
    for args in [
        &["--json", "patient", "find", "--given", "JEAN"][..],
        &[
            "--json",
            "row",
            "find",
            "patients",
            "--word",
            "given_names=jean",
        ],
    ] {
        let out = c.ok("admin", "pw", args);
        let found: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(found.as_array().map(Vec::len), Some(1), "{out}");
        assert_eq!(found[0]["id"], p);
    }
    let out = c.ok(
        "admin",
        "pw",
        &["--json", "patient", "find", "--given", "marie"],
    );
    assert_eq!(out.trim(), "[]");
    // Ordered, limited and paged: three more penicillin allergies, the
    // latest first two at a time, then the rest after the last shown.
    for when in ["2021", "2018-02", "2022-11"] {
        c.ok(
            "admin",
            "pw",
            &[
                "row",
                "insert",
                "allergies",
                "--parent",
                p,
                "substance=penicillin",
                "reaction=x",
                &format!("recorded_on={when}"),
            ],
        );
    }
    let page = |after: Option<&str>| {
        let mut args = vec![
            "--json",
            "row",
            "find",
            "allergies",
            "substance=Penicillin",
            "--order-by",
            "recorded_on",
            "--desc",
            "--limit",
            "2",
        ];
        if let Some(a) = after {
            args.extend(["--after", a]);
        }
        let out = c.ok("admin", "pw", &args);
        let found: serde_json::Value = serde_json::from_str(&out).unwrap();
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_owned(),
                    r["recorded_on"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let first = page(None);
    let when = |v: &[(String, String)]| v.iter().map(|(_, w)| w.clone()).collect::<Vec<_>>();
    assert_eq!(when(&first), ["2022-11", "2021"]);
    let second = page(Some(&first[1].0));
    assert_eq!(when(&second), ["2019-05", "2018-02"]);
    assert!(page(Some(&second[1].0)).is_empty());
    c.fails(
        "admin",
        "pw",
        &[
            "row",
            "find",
            "allergies",
            "substance=x",
            "--order-by",
            "nope",
        ],
        "nope",
    );
    c.fails(
        "admin",
        "pw",
        &["row", "find", "allergies", "substance=x", "--limit", "0"],
        "at least one row",
    );
    // The desk: the most recently changed patient first, one of them.
    c.ok(
        "admin",
        "pw",
        &[
            "patient", "add", "--family", "Dupond", "--given", "Luc", "--born", "1980",
        ],
    );
    let out = c.ok(
        "admin",
        "pw",
        &[
            "--json",
            "patient",
            "find",
            "--family-prefix",
            "dup",
            "--recent",
            "--limit",
            "1",
        ],
    );
    let found: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{out}");
    let out = c.ok(
        "admin",
        "pw",
        &[
            "--json",
            "patient",
            "find",
            "--family-prefix",
            "dup",
            "--limit",
            "1",
        ],
    );
    let found: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(found[0]["family_name"], "Dupond", "{out}");
    c.fails(
        "admin",
        "pw",
        &["row", "find", "patients", "--year", "born=1970-03"],
        "searched by a year",
    );
    c.fails(
        "admin",
        "pw",
        &["row", "find", "allergies", "--year", "substance=1970"],
        "no blind index",
    );
    let o = c.fails(
        "admin",
        "pw",
        &[
            "row",
            "insert",
            "allergies",
            "--parent",
            p,
            "substance=Sekret",
            "reaction=x",
            "recorded_on=13",
        ],
        "date",
    );
    assert!(!o.stderr.contains("Sekret"), "{}", o.stderr);
    c.fails("admin", "pw", &["row", "get", "alergies", a], "no table");
    c.ok("admin", "pw", &["row", "delete", "allergies", a]);
    c.fails("admin", "pw", &["row", "get", "allergies", a], "no row");
    // A vault made now has every row signed: nothing to adopt, and verify
    // counts the two patients and the four allergies left as their
    // author's.
    let out = c.ok("admin", "pw", &["adopt"]);
    assert!(out.contains("nothing to adopt"), "{out}");
    let out = c.ok("admin", "pw", &["verify"]);
    assert!(
        out.contains("6 rows signed by their author, 0 adopted, 0 unsigned, 0 forged"),
        "{out}"
    );
}

/// `passwd`: the new password from MEDVAULT_NEW_PASSWORD; afterwards only
/// it opens the vault. Without the test-suite flag a weak one is refused
/// with a hint, and nothing changes.
#[test]
fn passwd_changes_the_password() {
    let c = Cli::new();
    c.ok("admin", "pw", &["init"]);
    let run = |pw: &str, new: &str, fast: bool| {
        let mut cmd = Command::cargo_bin("medvault").unwrap();
        cmd.env_clear()
            .env("MEDVAULT_STORE", c.store())
            .env("MEDVAULT_USER", "admin")
            .env("MEDVAULT_PASSWORD", pw)
            .env("MEDVAULT_NEW_PASSWORD", new);
        if fast {
            cmd.arg("--danger-fast-kdf");
        }
        cmd.arg("passwd").output().unwrap()
    };
    let weak = run("pw", "abc123", false);
    assert!(!weak.status.success());
    let err = String::from_utf8_lossy(&weak.stderr);
    assert!(err.contains("too weak") && err.contains("hint: "), "{err}");
    assert!(!err.contains("abc123"), "{err}");
    c.ok("admin", "pw", &["user", "list"]);
    let out = run("pw", "the new admin password", true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("password changed for admin"));
    c.fails("admin", "pw", &["user", "list"], "wrong password");
    c.ok("admin", "the new admin password", &["user", "list"]);
}

/// `recover reset-password USER --shares FILE|-`: two of the shares `init`
/// printed give bob a new password; one share is refused with a hint.
#[test]
fn recover_reset_password_from_shares() {
    let c = Cli::new();
    let init = c.ok("admin", "pw", &["init"]);
    let shares: Vec<&str> = init
        .lines()
        .filter_map(|l| l.trim().strip_prefix("share "))
        .map(|l| l.split_once(": ").unwrap().1)
        .collect();
    let add = Command::cargo_bin("medvault")
        .unwrap()
        .env_clear()
        .env("MEDVAULT_STORE", c.store())
        .env("MEDVAULT_USER", "admin")
        .env("MEDVAULT_PASSWORD", "pw")
        .env("MEDVAULT_NEW_PASSWORD", "bob pw")
        .args(["--danger-fast-kdf", "user", "add", "bob"])
        .output()
        .unwrap();
    assert!(add.status.success());
    // The administrator chose bob's password: he must choose his own.
    c.fails(
        "bob",
        "bob pw",
        &["user", "list"],
        "must choose a new password",
    );
    assert!(c.passwd("bob", "bob pw", "bob's own").ok);
    c.ok("bob", "bob's own", &["user", "list"]);
    let reset = |input: String| {
        Command::cargo_bin("medvault")
            .unwrap()
            .env_clear()
            .env("MEDVAULT_STORE", c.store())
            .env("MEDVAULT_USER", "admin")
            .env("MEDVAULT_PASSWORD", "pw")
            .env("MEDVAULT_NEW_PASSWORD", "bob's new pw")
            .args([
                "--danger-fast-kdf",
                "recover",
                "reset-password",
                "bob",
                "--shares",
                "-",
            ])
            .write_stdin(input)
            .output()
            .unwrap()
    };
    let one = reset(format!("{}\n", shares[0]));
    assert!(!one.status.success());
    let err = String::from_utf8_lossy(&one.stderr);
    assert!(
        err.contains("1 share(s) given, 2 needed") && err.contains("hint: "),
        "{err}"
    );
    c.ok("bob", "bob's own", &["user", "list"]);
    let two = reset(format!("{}\n\n{}\n", shares[1], shares[3]));
    assert!(
        two.status.success(),
        "{}",
        String::from_utf8_lossy(&two.stderr)
    );
    assert!(String::from_utf8_lossy(&two.stdout).contains("bob has a new key"));
    c.fails("bob", "bob's own", &["user", "list"], "wrong password");
    c.fails("bob", "bob's new pw", &["user", "list"], "set by @root");
    let again = c.passwd("bob", "bob's new pw", "bob's new pw");
    assert!(!again.ok && again.stderr.contains("the password it replaces"));
    assert!(c.passwd("bob", "bob's new pw", "bob chose again").ok);
    c.ok("bob", "bob chose again", &["user", "list"]);

    // No administrator left to add users? Shares make bob one.
    c.fails(
        "bob",
        "bob chose again",
        &["scope", "create", "care-team"],
        "not an administrator",
    );
    let promote = Command::cargo_bin("medvault")
        .unwrap()
        .env_clear()
        .env("MEDVAULT_STORE", c.store())
        .env("MEDVAULT_USER", "bob")
        .env("MEDVAULT_PASSWORD", "bob chose again")
        .args([
            "--danger-fast-kdf",
            "recover",
            "new-admin",
            "bob",
            "--shares",
            "-",
        ])
        .write_stdin(format!("{}\n{}\n", shares[0], shares[2]))
        .output()
        .unwrap();
    assert!(
        promote.status.success(),
        "{}",
        String::from_utf8_lossy(&promote.stderr)
    );
    let out = String::from_utf8_lossy(&promote.stdout);
    assert!(
        out.contains("bob is an administrator") && out.contains("clinical"),
        "{out}"
    );
    c.ok("bob", "bob chose again", &["scope", "create", "care-team"]);

    // Nobody can log in? No --user: the root, rebuilt from the shares, acts.
    let as_root = c.with_env(
        &[("MEDVAULT_NEW_PASSWORD", "set by the root")],
        &["recover", "reset-password", "admin", "--shares", "-"],
        &format!("{}\n{}\n", shares[1], shares[2]),
    );
    assert!(as_root.ok, "{}", as_root.stderr);
    assert!(as_root.stderr.contains("as its root"), "{}", as_root.stderr);
    c.fails("admin", "pw", &["user", "list"], "wrong password");
    c.fails(
        "admin",
        "set by the root",
        &["user", "list"],
        "set by @root",
    );
    assert!(c.passwd("admin", "set by the root", "the admin again").ok);
    c.ok("admin", "the admin again", &["user", "list"]);
}
