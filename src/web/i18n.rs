//! The page's two languages: English and Chinese. The language is the
//! `orgsync_lang` cookie (set by the switch), else the first of
//! `Accept-Language` that is one of them, else English.

use axum::http::HeaderMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        let primary = s.trim().split(['-', '_', ';']).next().unwrap_or_default().to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }

    /// The request's language: the switch's cookie, else `Accept-Language`
    /// in the client's order of preference.
    pub fn of(headers: &HeaderMap) -> Lang {
        if let Some(l) = super::auth::cookie(headers, LANG_COOKIE).and_then(Lang::parse) {
            return l;
        }
        let accept = headers.get(axum::http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let mut offered: Vec<(f32, Lang)> = accept
            .split(',')
            .filter_map(|part| {
                let mut bits = part.split(';');
                let lang = Lang::parse(bits.next()?)?;
                let q = bits.find_map(|b| b.trim().strip_prefix("q=")?.parse::<f32>().ok()).unwrap_or(1.0);
                Some((q, lang))
            })
            .collect();
        offered.sort_by(|a, b| b.0.total_cmp(&a.0));
        offered.first().map_or(Lang::En, |(_, l)| *l)
    }

    /// Every text of the page in this language, by key.
    pub fn texts(self) -> std::collections::BTreeMap<&'static str, &'static str> {
        TEXTS.iter().map(|(k, en, zh)| (*k, if self == Lang::Zh { *zh } else { *en })).collect()
    }
}

pub const LANG_COOKIE: &str = "orgsync_lang";

/// (key, English, Chinese).
const TEXTS: &[(&str, &str, &str)] = &[
    ("skip", "Skip to the content", "跳到正文"),
    ("nav", "Pages", "页面"),
    ("overview", "Overview", "概览"),
    ("deletions", "Held-back deletions", "暂缓的删除"),
    ("quarantine", "Quarantine", "隔离"),
    ("explain", "Explain", "查询对象"),
    ("check", "Check", "检查"),
    ("logout", "Log out", "退出"),
    ("signed_in_as", "Signed in as", "当前身份"),
    ("login", "Log in", "登录"),
    ("login_intro", "This orgsync needs its admin token (daemon.admin_token).", "此 orgsync 需要管理令牌（daemon.admin_token）。"),
    ("token", "Admin token", "管理令牌"),
    ("wrong_token", "That token is not the admin token.", "令牌不正确。"),
    ("source", "Source", "数据源"),
    ("target", "Target", "目标"),
    ("schedule", "Schedule", "计划"),
    ("last_run", "Last run", "上次同步"),
    ("next_run", "Next run", "下次同步"),
    ("running_now", "A run is in progress.", "正在同步。"),
    ("never", "never", "从未"),
    ("manual", "on demand only", "仅手动"),
    ("objects", "Objects", "对象"),
    ("users", "Users", "用户"),
    ("departments", "Departments", "部门"),
    ("in_source", "in the source", "数据源中"),
    ("in_target", "in the target", "目标中"),
    ("bound", "bound", "已绑定"),
    ("history", "Run history", "同步记录"),
    ("run", "Run", "同步"),
    ("status", "Status", "状态"),
    ("trigger", "Trigger", "触发"),
    ("started", "Started", "开始"),
    ("duration", "Duration", "耗时"),
    ("created", "created", "创建"),
    ("updated", "updated", "更新"),
    ("disabled", "disabled", "停用"),
    ("deleted", "deleted", "删除"),
    ("failed", "failed", "失败"),
    ("held_back", "held back", "暂缓"),
    ("counts", "Counts", "数量"),
    ("message", "Message", "说明"),
    ("newer", "Newer", "较新"),
    ("older", "Older", "较早"),
    ("page", "Page", "页"),
    ("of", "of", "/"),
    ("no_runs", "No run is recorded yet.", "尚无同步记录。"),
    ("items", "Items", "明细"),
    ("kind", "Kind", "类型"),
    ("op", "Operation", "操作"),
    ("outcome", "Outcome", "结果"),
    ("any", "any", "全部"),
    ("filter", "Filter", "筛选"),
    ("source_id", "Source id", "源 ID"),
    ("target_id", "Target id", "目标 ID"),
    ("error", "Error or note", "错误或备注"),
    ("changes", "Changes", "变更"),
    ("field", "Field", "字段"),
    ("old", "Old", "原值"),
    ("new", "New", "新值"),
    ("no_items", "No item matches.", "没有匹配的明细。"),
    ("requests", "Request log", "请求日志"),
    ("method", "Method", "方法"),
    ("path", "Path", "路径"),
    ("ms", "ms", "毫秒"),
    ("no_requests", "No request was logged for this run.", "本次同步没有记录请求。"),
    ("more_requests", "more: orgsync runs requests", "更多：orgsync runs requests"),
    ("no_run", "There is no such run.", "没有这次同步。"),
    ("held_none", "No deletion is held back.", "没有暂缓的删除。"),
    ("held_intro", "The deletion guard held these back in run", "删除保护在以下同步中暂缓了这些删除："),
    ("reason", "Reason", "原因"),
    ("approve", "Approve", "批准"),
    (
        "approve_help",
        "Runs a sync that may do these removals once (as trigger --allow-deletes).",
        "执行一次同步，允许这些删除（等同 trigger --allow-deletes）。",
    ),
    ("reject", "Reject", "拒绝"),
    ("reject_help", "Keeps them held and silences their notification until they change.", "继续暂缓，并在其变化前不再通知。"),
    ("rejected_by", "Rejected by", "已被拒绝："),
    ("removals", "removals", "项删除"),
    ("actions", "Admin actions", "管理操作"),
    ("at", "When", "时间"),
    ("who", "Who", "操作者"),
    ("from", "From", "来源地址"),
    ("action", "Action", "操作"),
    ("detail", "Detail", "详情"),
    (
        "read_only",
        "This page is read-only: set daemon.web_actions = true to approve, reject or retry here.",
        "此页面只读：设置 daemon.web_actions = true 后可在此批准、拒绝或重试。",
    ),
    (
        "plain_http",
        "Actions are refused over plain HTTP beyond loopback: reach this page through a TLS proxy, or set daemon.web_actions_over_plain_http = true.",
        "不通过 TLS 从本机以外访问时不允许操作：请通过 TLS 代理访问，或设置 daemon.web_actions_over_plain_http = true。",
    ),
    ("done", "Done", "完成"),
    ("approved", "Approved: a run that may do these removals is queued.", "已批准：已排队一次允许这些删除的同步。"),
    (
        "rejected",
        "Rejected: they stay held back, and their notification is silent until they change.",
        "已拒绝：继续暂缓，变化前不再通知。",
    ),
    (
        "stale",
        "The held-back deletions changed since this page was shown: look at them again.",
        "暂缓的删除在页面显示后已变化，请重新查看。",
    ),
    (
        "csrf",
        "This form is stale or was not sent from this page (CSRF token missing or wrong): reload the page and try again.",
        "表单已过期或不是从本页提交（CSRF 令牌缺失或错误）：请刷新后重试。",
    ),
    ("back", "Back", "返回"),
    ("quarantine_none", "No object is failing.", "没有失败的对象。"),
    ("failures", "Failures in a row", "连续失败"),
    ("next_try", "Next try", "下次重试"),
    ("quarantined", "quarantined", "已隔离"),
    ("retry_later", "retry later", "稍后重试"),
    ("retry", "Retry", "重试"),
    ("retry_all", "Retry all", "全部重试"),
    ("released", "Released: tried again at the next run.", "已释放：下次同步时重试。"),
    (
        "explain_intro",
        "A user (id, username or email) or a department (id or name): what orgsync knows of it and what the next run does.",
        "用户（ID、用户名或邮箱）或部门（ID 或名称）：orgsync 所知的情况，以及下次同步会做什么。",
    ),
    ("query", "Id, username, email or name", "ID、用户名、邮箱或名称"),
    ("search", "Explain", "查询"),
    ("user", "user", "用户"),
    ("department", "department", "部门"),
    ("found_by", "found by", "匹配方式"),
    ("as_sent", "As the source sent it", "数据源原始记录"),
    ("mapped", "Mapped", "映射后"),
    ("scope", "Scope", "范围"),
    ("in_scope", "in", "在范围内"),
    ("out_of_scope", "out", "不在范围内"),
    ("binding", "Binding", "绑定"),
    ("none", "none", "无"),
    ("since", "since", "自"),
    ("match_keys", "Match keys", "匹配键"),
    ("target_now", "The target now", "目标当前"),
    ("decision", "The next run", "下次同步"),
    ("failing", "Failing", "失败"),
    ("unknown", "Nothing knows it: not the source, the mirror or the target.", "数据源、镜像和目标中都没有它。"),
    ("explain_error", "Could not explain it", "查询失败"),
    (
        "check_intro",
        "check-config reads the config file as it is on disk now; check-target asks the target what it offers, without writing.",
        "check-config 读取磁盘上当前的配置文件；check-target 向目标查询其能力，不写入。",
    ),
    ("run_checks", "Run the checks", "执行检查"),
    ("config_ok", "The config is valid.", "配置有效。"),
    ("config_problems", "The config has problems", "配置有问题"),
    ("target_rows", "What orgsync found of the target", "目标的情况"),
    ("target_error", "The target could not be checked", "无法检查目标"),
    ("event_stream", "Event stream", "事件流"),
    ("connected", "connected", "已连接"),
    ("down", "down", "已断开"),
    ("not_found", "Not found", "未找到"),
    ("refused", "Refused", "已拒绝"),
    ("status_succeeded", "succeeded", "成功"),
    ("status_partial", "partial", "部分成功"),
    ("status_failed", "failed", "失败"),
    ("status_running", "running", "进行中"),
];
