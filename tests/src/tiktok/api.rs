//! The JSON API calls: creator info, direct and inbox init, status fetch; the bearer token,
//! scope and rate checks in front of them. Touches only the server's state.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::tiktok) enum Api {
    CreatorInfo,
    DirectInit,
    InboxInit,
    Status,
}

impl Api {
    fn endpoint(self) -> &'static str {
        match self {
            Api::CreatorInfo => "creator_info",
            Api::DirectInit | Api::InboxInit => "init",
            Api::Status => "status",
        }
    }

    /// The token must carry one of these.
    fn scopes(self) -> &'static [&'static str] {
        match self {
            Api::CreatorInfo | Api::DirectInit => &[SCOPE_PUBLISH],
            Api::InboxInit => &[SCOPE_UPLOAD],
            Api::Status => &[SCOPE_PUBLISH, SCOPE_UPLOAD],
        }
    }
}

pub(super) async fn api(request: Request<Incoming>, shared: &Shared, api: Api) -> Answer {
    if request.method() != Method::POST {
        drain(request.into_body()).await;
        return Answer::error(405, "invalid_param", "this endpoint only takes POST");
    }
    if let Some(answer) = take_respond(shared, api.endpoint()) {
        drain(request.into_body()).await;
        return answer;
    }
    let (parts, body) = request.into_parts();
    let body = match read_small(body).await {
        Ok(body) => body,
        Err(why) => return Answer::invalid(why),
    };
    let now = shared.now();
    let mut inner = shared.inner();

    let (token, scopes) = match inner.bearer(header(&parts.headers, "authorization"), now) {
        Ok(bearer) => bearer,
        Err(answer) => return answer,
    };
    if !api
        .scopes()
        .iter()
        .any(|scope| scopes.iter().any(|s| s == scope))
    {
        return Answer::error(
            401,
            "scope_not_authorized",
            format!(
                "The user did not authorize the scope required for completing this request ({}).",
                api.scopes().join(" or ")
            ),
        );
    }
    if !inner.admit(&token, api.endpoint(), now) {
        return Answer::error(
            429,
            "rate_limit_exceeded",
            "The API rate limit was exceeded. Please try again later.",
        );
    }
    if !is_json_content_type(header(&parts.headers, "content-type")) {
        return Answer::invalid(format!(
            "Content-Type must be {JSON_CONTENT_TYPE:?}, not {:?}",
            header(&parts.headers, "content-type").unwrap_or("(none)")
        ));
    }
    let value = if api == Api::CreatorInfo && body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(value) => value,
            Err(e) => return Answer::invalid(format!("the request body is not valid JSON: {e}")),
        }
    };
    let result = match api {
        Api::CreatorInfo => inner.creator_info(&value),
        Api::DirectInit => inner.init(shared, &value, Mode::Direct, now),
        Api::InboxInit => inner.init(shared, &value, Mode::Inbox, now),
        Api::Status => inner.status(&value),
    };
    result.unwrap_or_else(|answer| answer)
}

/// Field checks on a JSON object, each failing with an `invalid_param` answer.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    what: &'a str,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value, what: &'a str, allowed: &[&str]) -> Result<Fields<'a>, Answer> {
        let map = value
            .as_object()
            .ok_or_else(|| Answer::invalid(format!("{what} must be a JSON object")))?;
        if let Some(unknown) = map.keys().find(|key| !allowed.contains(&key.as_str())) {
            return Err(Answer::invalid(format!(
                "{what} has an unknown field {unknown:?} (known: {})",
                allowed.join(", ")
            )));
        }
        Ok(Fields { map, what })
    }

    fn missing(&self, key: &str) -> Answer {
        Answer::invalid(format!("{}.{key} is required", self.what))
    }

    fn wrong(&self, key: &str, kind: &str) -> Answer {
        Answer::invalid(format!("{}.{key} must be {kind}", self.what))
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    fn string(&self, key: &str) -> Result<Option<&'a str>, Answer> {
        match self.map.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_str()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a string")),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, Answer> {
        match self.map.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a boolean")),
        }
    }

    fn integer(&self, key: &str) -> Result<Option<u64>, Answer> {
        match self.map.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a non-negative integer")),
        }
    }

    fn required_integer(&self, key: &str) -> Result<u64, Answer> {
        self.integer(key)?.ok_or_else(|| self.missing(key))
    }
}

impl Inner {
    /// Counts a call in its token's sliding window; false when the window is full.
    fn admit(&mut self, token: &str, endpoint: &'static str, now: Duration) -> bool {
        let limit = match endpoint {
            "creator_info" => self.options.limits.creator_info,
            "init" => self.options.limits.init,
            _ => self.options.limits.status,
        } as usize;
        let window = self.options.rate_window;
        let calls = self
            .windows
            .entry((token.to_string(), endpoint))
            .or_default();
        while calls.front().is_some_and(|&t| t + window <= now) {
            calls.pop_front();
        }
        if calls.len() >= limit {
            return false;
        }
        calls.push_back(now);
        true
    }

    fn creator_info(&mut self, body: &Value) -> Result<Answer, Answer> {
        Fields::of(body, "the request body", &[])?;
        let creator = &self.options.creator;
        Ok(Answer::ok(json!({
            "creator_avatar_url": format!("https://p16-sign.tiktokcdn.com/{}.jpeg", creator.username),
            "creator_username": creator.username,
            "creator_nickname": creator.nickname,
            "privacy_level_options": creator.privacy_level_options,
            "comment_disabled": creator.comment_disabled,
            "duet_disabled": creator.duet_disabled,
            "stitch_disabled": creator.stitch_disabled,
            "max_video_post_duration_sec": creator.max_video_post_duration_sec,
        })))
    }

    fn init(
        &mut self,
        shared: &Shared,
        body: &Value,
        mode: Mode,
        now: Duration,
    ) -> Result<Answer, Answer> {
        let top = match mode {
            Mode::Direct => Fields::of(body, "the request body", &["post_info", "source_info"])?,
            Mode::Inbox => {
                if body.get("post_info").is_some() {
                    return Err(Answer::invalid(
                        "post_info is not accepted by the inbox upload endpoint",
                    ));
                }
                Fields::of(body, "the request body", &["source_info"])?
            }
        };
        let source_info = top
            .get("source_info")
            .ok_or_else(|| top.missing("source_info"))?;
        let source = Fields::of(
            source_info,
            "source_info",
            &["source", "video_size", "chunk_size", "total_chunk_count"],
        )?;
        match source.string("source")? {
            Some("FILE_UPLOAD") => {}
            Some(other) => {
                return Err(Answer::invalid(format!(
                    "source_info.source must be FILE_UPLOAD here, not {other:?}"
                )))
            }
            None => return Err(source.missing("source")),
        }
        let video_size = source.required_integer("video_size")?;
        let chunk_size = source.required_integer("chunk_size")?;
        let total_chunk_count = source.required_integer("total_chunk_count")?;
        let plan =
            plan_chunks(video_size, chunk_size, total_chunk_count).map_err(Answer::invalid)?;

        let post_info = match mode {
            Mode::Direct => {
                let value = top
                    .get("post_info")
                    .ok_or_else(|| top.missing("post_info"))?;
                self.check_post_info(value)?;
                Some(value.clone())
            }
            Mode::Inbox => {
                let window = Duration::from_secs(24 * 3600);
                while self.inbox_inits.front().is_some_and(|&t| t + window <= now) {
                    self.inbox_inits.pop_front();
                }
                if self.inbox_inits.len() >= self.options.max_pending_shares as usize {
                    return Err(Answer::error(
                        403,
                        "spam_risk_too_many_pending_share",
                        format!(
                            "The user has {} pending shares in the last 24 hours.",
                            self.inbox_inits.len()
                        ),
                    ));
                }
                self.inbox_inits.push_back(now);
                None
            }
        };

        self.next_id += 1;
        let upload_id = 7_300_000_000_000_000_000 + self.next_id;
        let publish_id = match mode {
            Mode::Direct => format!("v_pub_file~v2-1.{upload_id}"),
            Mode::Inbox => format!("v_inbox_file~v2.{upload_id}"),
        };
        let upload_token = blake3::hash(
            format!(
                "{upload_id} {:?} {} {}",
                Instant::now(),
                shared.addr,
                std::process::id()
            )
            .as_bytes(),
        )
        .to_hex()[..32]
            .to_string();
        let upload_url = format!(
            "http://{}{UPLOAD_PATH}?upload_id={upload_id}&upload_token={upload_token}",
            shared.addr
        );
        debug_assert!(publish_id.len() <= MAX_PUBLISH_ID);
        debug_assert!(upload_url.len() <= MAX_UPLOAD_URL);
        let data_path = shared.dir.join(format!("{upload_id}.video"));
        if let Err(e) = std::fs::File::create(&data_path) {
            return Err(Answer::error(
                500,
                "internal_error",
                format!("create {}: {e}", data_path.display()),
            ));
        }
        self.uploads.push(Upload {
            record: UploadRecord {
                publish_id: publish_id.clone(),
                upload_url: upload_url.clone(),
                mode,
                video_size,
                chunk_size,
                total_chunk_count,
                post_info,
                received: 0,
                chunks: Vec::new(),
                content_types: Vec::new(),
                complete: false,
                expired: false,
                statuses: Vec::new(),
                post_id: None,
                blake3: None,
                data_path,
                created: now,
            },
            upload_id,
            upload_token,
            plan,
            hasher: blake3::Hasher::new(),
            busy: Arc::new(tokio::sync::Mutex::new(())),
            processing_left: 0,
            outcome: None,
            lost_ack: None,
        });
        Ok(
            Answer::ok(json!({"publish_id": publish_id, "upload_url": upload_url}))
                .publish_id(&publish_id),
        )
    }

    fn check_post_info(&self, value: &Value) -> Result<(), Answer> {
        let info = Fields::of(
            value,
            "post_info",
            &[
                "title",
                "privacy_level",
                "disable_duet",
                "disable_stitch",
                "disable_comment",
                "video_cover_timestamp_ms",
                "brand_content_toggle",
                "brand_organic_toggle",
                "is_aigc",
            ],
        )?;
        let privacy = info
            .string("privacy_level")?
            .ok_or_else(|| info.missing("privacy_level"))?;
        if let Some(title) = info.string("title")? {
            let units = title.encode_utf16().count();
            if units > MAX_TITLE_UTF16 {
                return Err(Answer::invalid(format!(
                    "post_info.title is {units} UTF-16 code units, over {MAX_TITLE_UTF16}"
                )));
            }
        }
        let disable_comment = info.boolean("disable_comment")?;
        let disable_duet = info.boolean("disable_duet")?;
        let disable_stitch = info.boolean("disable_stitch")?;
        info.integer("video_cover_timestamp_ms")?;
        for key in ["brand_content_toggle", "brand_organic_toggle", "is_aigc"] {
            info.boolean(key)?;
        }
        let creator = &self.options.creator;
        if !creator.privacy_level_options.iter().any(|p| p == privacy) {
            return Err(Answer::error(
                403,
                "privacy_level_option_mismatch",
                format!(
                    "privacy_level {privacy:?} is not one of the creator's options {:?}",
                    creator.privacy_level_options
                ),
            ));
        }
        if self.options.unaudited && privacy != "SELF_ONLY" {
            return Err(Answer::error(
                403,
                "unaudited_client_can_only_post_to_private_accounts",
                format!("an unaudited client may only post SELF_ONLY, not {privacy}"),
            ));
        }
        for (disabled, flag, key) in [
            (creator.comment_disabled, disable_comment, "disable_comment"),
            (creator.duet_disabled, disable_duet, "disable_duet"),
            (creator.stitch_disabled, disable_stitch, "disable_stitch"),
        ] {
            if disabled && flag != Some(true) {
                return Err(Answer::invalid(format!(
                    "post_info.{key} must be true: the creator has it disabled"
                )));
            }
        }
        Ok(())
    }

    fn status(&mut self, body: &Value) -> Result<Answer, Answer> {
        let fields = Fields::of(body, "the request body", &["publish_id"])?;
        let publish_id = fields
            .string("publish_id")?
            .ok_or_else(|| fields.missing("publish_id"))?;
        let upload = self
            .uploads
            .iter_mut()
            .find(|u| u.record.publish_id == publish_id)
            .ok_or_else(|| {
                Answer::invalid(format!("publish_id {publish_id:?} does not exist"))
                    .publish_id(publish_id)
            })?;
        let mut data = Map::new();
        let status = match (&upload.outcome, upload.record.complete) {
            (Some(outcome), true) if upload.processing_left == 0 => match outcome {
                Outcome::Published => {
                    let post_id = *upload
                        .record
                        .post_id
                        .get_or_insert(7_400_000_000_000_000_000 + upload.upload_id % 1_000_000);
                    data.insert("publicaly_available_post_id".into(), json!([post_id]));
                    "PUBLISH_COMPLETE"
                }
                Outcome::Inboxed => "SEND_TO_USER_INBOX",
                Outcome::Failed(reason) => {
                    data.insert("fail_reason".into(), json!(reason));
                    "FAILED"
                }
            },
            (_, true) => {
                upload.processing_left = upload.processing_left.saturating_sub(1);
                "PROCESSING_UPLOAD"
            }
            (_, false) => "PROCESSING_UPLOAD",
        };
        data.insert("status".into(), json!(status));
        data.insert("uploaded_bytes".into(), json!(upload.record.received));
        data.entry("publicaly_available_post_id")
            .or_insert_with(|| json!([]));
        upload.record.statuses.push(status.to_string());
        Ok(Answer::ok(Value::Object(data)).publish_id(publish_id))
    }
}
