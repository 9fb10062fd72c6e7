//! Who may call and what it costs: the bearer token and its scopes, the daily quota (rolled
//! at midnight Pacific Time) and what each call is charged, and the scheduled publishing the
//! clock brings. Touches only the server's state.

use serde_json::json;

use super::answer::Answer;
use super::*;

/// What a call is charged when it passes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Charge {
    Units(u64),
    Insert,
}

/// 403 `insufficientPermissions`: the token has none of `scopes`.
pub(super) fn insufficient_scope(scopes: &[&str]) -> Answer {
    Answer::error(
        403,
        "global",
        "insufficientPermissions",
        "Request had insufficient authentication scopes.",
    )
    .short("Insufficient Permission")
    .header(
        "www-authenticate",
        format!(
            "Bearer realm=\"https://accounts.google.com/\", error=\"insufficient_scope\", \
             scope=\"{}\"",
            scopes.join(" ")
        ),
    )
    .note(format!("needs one of {}", scopes.join(" ")))
}

impl Inner {
    /// The scopes of the token an `Authorization: Bearer` header carries: the fixed
    /// `options.token`, or an access token issued through OAuth that is still good.
    pub(super) fn bearer(
        &self,
        authorization: Option<&str>,
        now: Duration,
    ) -> Result<Vec<String>, Answer> {
        let Some(token) = authorization.and_then(|value| value.strip_prefix("Bearer ")) else {
            return Err(Answer::error(
                401,
                "global",
                "required",
                "Request is missing required authentication credential. Expected OAuth 2 \
                 access token, login cookie or other valid authentication credential.",
            )
            .at("Authorization", "header")
            .short("Login Required.")
            .header(
                "www-authenticate",
                "Bearer realm=\"https://accounts.google.com/\"".into(),
            ));
        };
        if token == self.options.token {
            return Ok(self.options.scopes.clone());
        }
        self.oauth.access(token, now).map_err(|(why, excused)| {
            let mut answer = Answer::error(
                401,
                "global",
                "authError",
                "Request had invalid authentication credentials. Expected OAuth 2 access \
                 token, login cookie or other valid authentication credential.",
            )
            .at("Authorization", "header")
            .short("Invalid Credentials")
            .header(
                "www-authenticate",
                "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"".into(),
            )
            .note(why);
            answer.excused = excused;
            answer
        })
    }

    /// Applies every `publishAt` that passed and rolls the quota day.
    pub(super) fn settle(&mut self, shared: &Shared, now: Duration) {
        let utc = shared.utc(now);
        let day = pacific::quota_day(utc);
        if day != self.quota.day {
            self.quota.day = day;
            self.quota.units_used = 0;
            self.quota.inserts_used = 0;
            self.quota.told = (false, false);
        }
        for session in &mut self.sessions {
            if !session.complete_and_present()
                || matches!(session.record.upload_status.as_str(), "failed" | "rejected")
            {
                continue;
            }
            let status = &mut session.record.status;
            let Some(at) = status["publishAt"]
                .as_str()
                .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
                .map(|at| at.with_timezone(&Utc))
            else {
                continue;
            };
            if at > utc || status["privacyStatus"] != "private" {
                continue;
            }
            status["privacyStatus"] = json!("public");
            if let Some(map) = status.as_object_mut() {
                map.remove("publishAt");
            }
            let since = session
                .record
                .privacy_changes
                .last()
                .map_or(Duration::ZERO, |(at, _)| *at);
            session
                .record
                .privacy_changes
                .push((shared.virtual_at(at).max(since), "public".to_string()));
            session.record.published_by_publish_at = true;
            session.ever_public = true;
        }
    }

    /// Whether the quota has room for `charge`; the refusal when it has not.
    pub(super) fn quota_room(&mut self, charge: Charge) -> Result<(), Answer> {
        let daily = self.options.daily_quota;
        let quota = &mut self.quota;
        let (room, insert_bucket, what) = match (charge, self.options.insert_quota) {
            (Charge::Insert, InsertQuota::Calls(calls)) => (
                quota.inserts_used < calls,
                true,
                format!("{} of {calls} videos.insert calls used", quota.inserts_used),
            ),
            (Charge::Insert, InsertQuota::Units(units)) | (Charge::Units(units), _) => (
                quota.units_used + units <= daily,
                false,
                format!(
                    "{} of {daily} units used, {units} more asked",
                    quota.units_used
                ),
            ),
        };
        if room {
            return Ok(());
        }
        quota.refusals += 1;
        let told = if insert_bucket {
            &mut quota.told.1
        } else {
            &mut quota.told.0
        };
        let first = !*told;
        *told = true;
        let mut answer = Answer::error(
            403,
            "youtube.quota",
            "quotaExceeded",
            "The request cannot be completed because you have exceeded your \
             <a href=\"/youtube/v3/getting-started#quota\">quota</a>.",
        )
        .note(if first {
            what
        } else {
            format!("{what}; asked again before the quota reset at midnight Pacific Time")
        });
        answer.excused = first;
        Err(answer)
    }

    pub(super) fn charge(&mut self, charge: Charge) {
        match (charge, self.options.insert_quota) {
            (Charge::Units(units), _) => self.quota.units_used += units,
            (Charge::Insert, InsertQuota::Calls(_)) => self.quota.inserts_used += 1,
            (Charge::Insert, InsertQuota::Units(units)) => {
                self.quota.inserts_used += 1;
                self.quota.units_used += units;
            }
        }
    }
}
