//! Where passwords come from: a file, an environment variable, or a prompt
//! (asked twice for a new password); `--batch` forbids prompting.

use std::io::IsTerminal;
use std::path::Path;

use crate::commands::CliError;

fn from_file(path: &Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::msg(
            format!("cannot read password file {}: {e}", path.display()),
            "check the path and its permissions",
        )
    })?;
    Ok(text.lines().next().unwrap_or("").to_owned())
}

/// The user's own password.
pub fn current(file: Option<&Path>, batch: bool, user: &str) -> Result<String, CliError> {
    if let Some(f) = file {
        return from_file(f);
    }
    if let Ok(p) = std::env::var("MEDVAULT_PASSWORD") {
        return Ok(p);
    }
    prompt_once(
        &format!("Password for {user}: "),
        batch,
        "--password-file or MEDVAULT_PASSWORD",
    )
}

/// A new password: from `file`, `env`, or asked twice.
pub fn new(file: Option<&Path>, env: &str, batch: bool, who: &str) -> Result<String, CliError> {
    if let Some(f) = file {
        return from_file(f);
    }
    if let Ok(p) = std::env::var(env) {
        return Ok(p);
    }
    let how = if env == "MEDVAULT_PASSWORD" {
        "--password-file or MEDVAULT_PASSWORD"
    } else {
        "--new-password-file or MEDVAULT_NEW_PASSWORD"
    };
    let a = prompt_once(&format!("New password for {who}: "), batch, how)?;
    let b = prompt_once(&format!("Repeat the password for {who}: "), batch, how)?;
    if a != b {
        return Err(CliError::msg(
            "the two passwords differ",
            "run the command again",
        ));
    }
    Ok(a)
}

/// Whether a prompt can be shown.
pub fn can_prompt(batch: bool) -> bool {
    !batch && std::io::stdin().is_terminal()
}

fn prompt_once(prompt: &str, batch: bool, how: &str) -> Result<String, CliError> {
    if batch || !std::io::stdin().is_terminal() {
        return Err(CliError::msg(
            "a password is needed and prompting is not possible (--batch or no terminal)",
            format!("give it with {how}"),
        ));
    }
    rpassword::prompt_password(prompt)
        .map_err(|e| CliError::msg(format!("cannot read the password: {e}"), "try again"))
}
