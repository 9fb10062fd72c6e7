//! `upqctl login DEST`, `upqctl accounts` and `upqctl logout DEST`: the destinations'
//! accounts; and `upqctl open`, the sign-in to the desk. The daemon does the sign-in and keeps the tokens; this only opens the browser
//! and says how it ended. No token ever reaches this process.

use std::time::Duration;

use chrono::Local;
use serde_json::json;
use upq_proto::AccountView;

use super::Ctx;
use crate::exit;
use crate::render::{print_json, relative};

pub fn login(
    ctx: &Ctx,
    destination: &str,
    no_browser: bool,
    timeout: Duration,
) -> anyhow::Result<u8> {
    let json = ctx.json;
    let mut shown_url = String::new();
    let mut on_url = |url: &str| -> Result<(), crate::backend::Error> {
        shown_url = url.to_string();
        if no_browser {
            // The first line of stdout, for scripts and for a browser on another machine.
            if json {
                eprintln!("{url}");
            } else {
                println!("{url}");
            }
        } else if !open_in_browser(url) {
            eprintln!("upqctl: cannot start a browser (xdg-open); open this address to sign in:");
            if json {
                eprintln!("{url}");
            } else {
                println!("{url}");
            }
        }
        eprintln!(
            "Waiting for the sign-in to finish in the browser (up to {})…",
            humantime::format_duration(timeout)
        );
        Ok(())
    };
    let result = match ctx.backend.login(destination, timeout, &mut on_url) {
        Ok(result) => result,
        Err(e) if e.is_timeout() => {
            let message = format!(
                "the sign-in was not finished within {}",
                humantime::format_duration(timeout)
            );
            if json {
                print_json(&json!({
                    "destination": destination, "ok": false, "timed_out": true,
                    "message": message, "url": shown_url,
                }))?;
            }
            eprintln!("upqctl: {message}");
            return Ok(exit::TIMEOUT);
        }
        Err(e) => return Err(e.into()),
    };
    if json {
        print_json(&json!({
            "destination": result.destination, "ok": result.ok, "timed_out": result.timed_out,
            "message": result.message, "url": shown_url,
        }))?;
    } else if result.ok {
        println!("{}", result.message);
    }
    Ok(match (result.ok, result.timed_out) {
        (true, _) => exit::SUCCESS,
        (false, true) => {
            eprintln!("upqctl: {}", result.message);
            exit::TIMEOUT
        }
        (false, false) => {
            eprintln!("upqctl: {}", result.message);
            exit::FAILED
        }
    })
}

/// `upqctl open`: signs the browser in to the desk with a one-time address, or prints
/// that address (`--no-browser`, or when no browser starts) as the first line of stdout.
pub fn open(ctx: &Ctx, no_browser: bool) -> anyhow::Result<u8> {
    let url = ctx.backend.open_desk()?;
    if ctx.json {
        print_json(&json!({ "url": url }))?;
        if !no_browser && !open_in_browser(&url) {
            eprintln!("upqctl: cannot start a browser (xdg-open); open the address above");
        }
        return Ok(exit::SUCCESS);
    }
    if no_browser {
        println!("{url}");
    } else if open_in_browser(&url) {
        eprintln!("Opened the desk in the browser.");
    } else {
        eprintln!(
            "upqctl: cannot start a browser (xdg-open); open this address (once, within a minute):"
        );
        println!("{url}");
    }
    Ok(exit::SUCCESS)
}

/// Opens `url` with the desktop's browser; false when that cannot be done.
fn open_in_browser(url: &str) -> bool {
    std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

pub fn accounts(ctx: &Ctx) -> anyhow::Result<u8> {
    let (accounts, data) = ctx.backend.accounts()?;
    if ctx.json {
        print_json(&data)?;
    } else {
        print!("{}", accounts_table(&accounts, &Local::now()));
    }
    Ok(exit::SUCCESS)
}

pub fn logout(ctx: &Ctx, destination: &str) -> anyhow::Result<u8> {
    let message = ctx.backend.logout(destination)?;
    if ctx.json {
        print_json(&json!({ "destination": destination, "message": message }))?;
    } else {
        println!("{message}");
    }
    Ok(exit::SUCCESS)
}

/// One block per account: who, what was granted, when things expire, where it is kept.
fn accounts_table(accounts: &[AccountView], now: &chrono::DateTime<Local>) -> String {
    if accounts.is_empty() {
        return "No destination signs in (TikTok and YouTube destinations do).\n".to_string();
    }
    let mut out = String::new();
    for account in accounts {
        let who = match (&account.display_name, &account.account_id) {
            (Some(name), Some(id)) => format!("{name} ({id})"),
            (Some(name), None) => name.clone(),
            (None, Some(id)) => id.clone(),
            (None, None) => "-".to_string(),
        };
        let when = |at: &Option<chrono::DateTime<chrono::Utc>>| {
            at.map(|at| relative(&at, now))
                .unwrap_or_else(|| "-".into())
        };
        out.push_str(&format!(
            "{}  {}  {}\n  account:  {who}\n",
            account.destination,
            account.provider,
            account.state.replace('_', " ")
        ));
        if !account.scopes.is_empty() {
            out.push_str(&format!("  scopes:   {}\n", account.scopes.join(", ")));
        }
        if !account.missing_scopes.is_empty() {
            out.push_str(&format!(
                "  missing:  {}\n",
                account.missing_scopes.join(", ")
            ));
        }
        if account.state != "manual" {
            out.push_str(&format!(
                "  access token expires {}, refresh token {}\n",
                when(&account.access_expires_at),
                when(&account.refresh_expires_at)
            ));
        }
        out.push_str(&format!("  stored in: {}\n", store_name(&account.store)));
        if let Some(message) = &account.message {
            out.push_str(&format!("  {message}\n"));
        }
    }
    out
}

fn store_name(store: &str) -> &str {
    match store {
        "secret_service" => "the Secret Service (desktop keyring)",
        "file" => "a private file in upq's data folder",
        "config" => "the configuration (a token you manage)",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_the_account_and_its_store() {
        let account = AccountView {
            destination: "tiktok".into(),
            provider: "TikTok".into(),
            state: "signin_required".into(),
            account_id: Some("open-1".into()),
            display_name: Some("Ana".into()),
            scopes: vec!["video.publish".into()],
            missing_scopes: vec![],
            access_expires_at: None,
            refresh_expires_at: None,
            store: "file".into(),
            message: Some("run `upqctl login tiktok`".into()),
        };
        let text = accounts_table(&[account], &Local::now());
        assert!(text.contains("tiktok  TikTok  signin required"), "{text}");
        assert!(text.contains("Ana (open-1)"), "{text}");
        assert!(text.contains("private file"), "{text}");
        assert!(text.contains("upqctl login tiktok"), "{text}");
    }
}
