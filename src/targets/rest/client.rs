//! The REST target's wire: requests rendered from their templates, the
//! credentials (an OAuth2 token fetched and cached), retries, and listings
//! page by page.

use super::*;

impl RestTarget {
    pub(super) async fn fetch_token(&self) -> Result<Token, TargetError> {
        let Auth::OAuth2 { client_id, client_secret, scope, audience, basic, token_ttl } = &self.c.auth else {
            return Err(TargetError::NotConfigured("OAuth2 client"));
        };
        let url = self.render("target.auth.token_url", &self.ctx(json!({})))?;
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if !basic {
            form.extend([("client_id", client_id.as_str()), ("client_secret", client_secret.expose())]);
        }
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        if let Some(a) = audience {
            form.push(("audience", a));
        }
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let mut req = self.http.post(&url).header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body);
        if *basic {
            req = req.basic_auth(client_id, Some(client_secret.expose()));
        }
        let path = url::Url::parse(&url).map_or_else(|_| "token".to_owned(), |u| u.path().to_owned());
        crate::telemetry::target_request("token");
        let started = std::time::Instant::now();
        let resp = match req.send().await {
            Ok(r) => r,
            Err(source) => {
                let e = TargetError::Transport { method: "POST", path: path.clone(), source };
                self.log.push("POST", &path, started, None, Some(e.to_string()));
                return Err(e);
            }
        };
        let status = resp.status().as_u16();
        self.log.push("POST", &path, started, Some(status), None);
        let body = resp.bytes().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            // RFC 6749 5.2: `error` names it, `error_description` says more.
            let v: Value = serde_json::from_slice(&body).unwrap_or_default();
            let named = match (v["error"].as_str(), v["error_description"].as_str()) {
                (Some(e), Some(d)) => Some(format!("{e} ({d})")),
                (Some(e), None) => Some(e.to_owned()),
                _ => detail(&body),
            };
            let why = named.map(|d| format!("the OAuth2 token request was refused: {}", crate::redact::redact(&d)));
            return Err(TargetError::Http { method: "POST", path, status, detail: why, retry_after: None });
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        let value = v["access_token"].as_str().filter(|t| !t.is_empty()).ok_or_else(|| TargetError::Decode {
            method: "POST",
            path: path.clone(),
            message: "no access_token in the answer".into(),
        })?;
        let ttl = v["expires_in"].as_u64().map_or(*token_ttl, Duration::from_secs);
        Ok(Token { value: value.to_owned(), ttl })
    }

    /// A request's URL (the path shown in logs without the query), query,
    /// headers and body, from its templates (or `url` verbatim, a next-page
    /// link).
    pub(super) fn rendered(
        &self,
        req: &Request,
        ctx: &Value,
        url: Option<&str>,
        extra_query: &[(String, String)],
    ) -> Result<Rendered, TargetError> {
        let path = match url {
            Some(u) => u.to_owned(),
            None => self.render(&format!("{}.path", req.name), ctx)?,
        };
        let full = if path.starts_with("http://") || path.starts_with("https://") {
            path.clone()
        } else {
            format!("{}{path}", self.c.base_url.as_str().trim_end_matches('/'))
        };
        let shown = url::Url::parse(&full).map_or_else(|_| path.clone(), |u| u.path().to_owned());
        let mut query: Vec<(String, String)> = Vec::new();
        if url.is_none() {
            for k in &req.query {
                query.push((k.clone(), self.render(&format!("{}.query.{k}", req.name), ctx)?));
            }
        }
        query.extend(extra_query.iter().cloned());
        let mut headers = Vec::new();
        for k in &req.headers {
            headers.push((k.clone(), self.render(&format!("{}.headers.{k}", req.name), ctx)?));
        }
        let body = if req.body {
            let text = self.render(&format!("{}.body", req.name), ctx)?;
            let v: Value = serde_json::from_str(&text).map_err(|source| {
                TargetError::Template(TemplateError::NotJson {
                    name: format!("{}.body", req.name),
                    text: text.chars().take(200).collect(),
                    source,
                })
            })?;
            Some(v)
        } else {
            None
        };
        Ok(Rendered { full, shown, query, headers, body })
    }

    /// The configured credentials on a request (an OAuth2 token as a bearer).
    pub(super) fn authorize(&self, b: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
        let b = match &self.c.auth {
            Auth::None | Auth::OAuth2 { .. } => b,
            Auth::ApiKey { name, value, in_query: true } => b.query(&[(name.as_str(), value.expose())]),
            Auth::ApiKey { name, value, in_query: false } => b.header(name, value.expose()),
            Auth::Bearer(t) => b.bearer_auth(t.expose()),
            Auth::Basic { username, password } => b.basic_auth(username, Some(password.expose())),
        };
        match token {
            Some(t) => b.bearer_auth(t),
            None => b,
        }
    }

    /// One request from its templates (or to `url` verbatim, a next-page
    /// link), retried on timeouts, 429 and 5xx; an OAuth2 token refused
    /// with 401 is fetched again once.
    pub(super) async fn send(
        &self,
        req: &Request,
        ctx: &Value,
        url: Option<&str>,
        extra_query: &[(String, String)],
    ) -> Result<Answer, TargetError> {
        let Rendered { full, shown, query, headers, body } = self.rendered(req, ctx, url, extra_query)?;
        let m = method_name(&req.method);
        let refreshed = std::sync::atomic::AtomicBool::new(false);
        let attempt = || async {
            let token = match &self.c.auth {
                Auth::OAuth2 { .. } => Some(self.token.get(self.fetch_token()).await?),
                _ => None,
            };
            self.limiter.until_ready().await;
            let mut b = self.http.request(req.method.clone(), &full).query(&query);
            for (k, v) in &headers {
                b = b.header(k, v);
            }
            b = self.authorize(b, token.as_deref());
            if let Some(v) = &body {
                b = b.json(v);
            }
            let started = std::time::Instant::now();
            let r = b.send().await;
            match &r {
                Ok(resp) => self.log.push(m, &shown, started, Some(resp.status().as_u16()), None),
                Err(e) => self.log.push(m, &shown, started, None, Some(crate::redact::redact(&e.to_string()).into_owned())),
            }
            crate::telemetry::target_request(match &r {
                Ok(resp) if resp.status().is_success() => "ok",
                Ok(_) => "http_error",
                Err(_) => "transport",
            });
            let resp = r.map_err(|source| TargetError::Transport { method: m, path: shown.clone(), source })?;
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.map_err(|source| TargetError::Transport { method: m, path: shown.clone(), source })?;
            let ok = if req.ok_status.is_empty() { (200..300).contains(&status) } else { req.ok_status.contains(&status) };
            if ok {
                return Ok(Answer { body: serde_json::from_slice(&bytes).unwrap_or(Value::Null), headers });
            }
            if status == 401
                && let Some(t) = &token
                && !refreshed.swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                self.token.invalidate(t).await;
                return Err(TargetError::Http {
                    method: m,
                    path: shown.clone(),
                    status: 503,
                    detail: Some("token refused (401): fetched again".into()),
                    retry_after: Some(Duration::ZERO),
                });
            }
            let retry_after = crate::http_client::header_seconds(&headers, reqwest::header::RETRY_AFTER.as_str());
            Err(TargetError::Http { method: m, path: shown.clone(), status, detail: detail(&bytes), retry_after })
        };
        attempt
            .retry(crate::targets::backoff(self.c.max_retries))
            .when(TargetError::is_transient)
            .adjust(|e, d| e.retry_after().or(d).map(|d| d.min(Duration::from_secs(300))))
            .notify(|e, d| tracing::warn!(error = %e, retry_in = ?d, "target request failed, retrying"))
            .await
    }

    /// Every object of a listing, page by page, nested ones included.
    pub(super) async fn list(&self, l: &Listing, ctx: &Value) -> Result<Vec<Value>, TargetError> {
        self.list_pages(l, ctx, u64::MAX).await
    }

    /// The objects of a listing's first `pages` pages.
    pub(super) async fn list_pages(&self, l: &Listing, ctx: &Value, pages: u64) -> Result<Vec<Value>, TargetError> {
        let mut out = Vec::new();
        let mut page = 0u64;
        let mut cursor: Option<String> = None;
        let mut link: Option<String> = None;
        let mut seen: HashSet<String> = HashSet::new();
        let size = l.page_size;
        loop {
            let mut q: Vec<(String, String)> = Vec::new();
            let mut ctx = ctx.clone();
            match &l.paging {
                Paging::Page { param, size_param, first } => {
                    q.push((param.clone(), (first + page).to_string()));
                    q.push((size_param.clone(), size.to_string()));
                }
                Paging::Offset { param, size_param } => {
                    q.push((param.clone(), (page * size).to_string()));
                    q.push((size_param.clone(), size.to_string()));
                }
                Paging::Cursor { param, .. } => {
                    if let Some(c) = &cursor {
                        q.push((param.clone(), c.clone()));
                    }
                }
                Paging::None | Paging::Link { .. } => {}
            }
            ctx["page"] = json!(page);
            ctx["cursor"] = json!(cursor);
            let a = self.send(&l.request, &ctx, link.as_deref(), &q).await?;
            let items: Vec<Value> = l.items.all(&a.body).into_iter().cloned().collect();
            let n = items.len() as u64;
            let mut stack = items;
            while let Some(item) = stack.pop() {
                if let Some(ch) = &l.children {
                    stack.extend(ch.all(&item).into_iter().cloned());
                }
                out.push(item);
            }
            page += 1;
            if page >= pages {
                break;
            }
            if page > 100_000 {
                return Err(TargetError::Unexpected(format!("{}: more than 100,000 pages; stopped", l.request.name)));
            }
            let next = match &l.paging {
                Paging::None => None,
                Paging::Page { .. } | Paging::Offset { .. } => {
                    let last = if l.stop_empty { n == 0 } else { n < size };
                    (!last).then(String::new)
                }
                Paging::Cursor { next, .. } => next.text(&a.body).filter(|c| !c.is_empty() && n > 0),
                Paging::Link { next } => match next {
                    Some(p) => p.text(&a.body),
                    None => next_link(&a.headers),
                }
                .filter(|u| !u.is_empty()),
            };
            let Some(next) = next else { break };
            if !next.is_empty() && !seen.insert(next.clone()) {
                return Err(TargetError::Unexpected(format!(
                    "{}: the server gave the same next page twice ({next}); the list was not read to the end",
                    l.request.name
                )));
            }
            match &l.paging {
                Paging::Cursor { .. } => cursor = Some(next),
                Paging::Link { .. } => link = Some(next),
                _ => {}
            }
        }
        Ok(out)
    }
}
