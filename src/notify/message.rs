//! The message a channel gets: the same facts in English or Chinese text
//! for the chat bots, or as JSON for a generic webhook.

use crate::config::notify::{Condition, Language};
use crate::mirror::{ItemRecord, RunRecord};
use serde_json::{Value, json};

/// Where a run came from, as its notification names it.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// The source kind.
    pub source: &'a str,
    /// Which orgsync (`daemon.name`, else the host name).
    pub instance: &'a str,
    /// `daemon.public_url`.
    pub public_url: Option<&'a str>,
    /// Sent by the service (`orgsync run`): the next step is `orgsync
    /// trigger …`, since `orgsync sync` cannot take the service's lock.
    pub service: bool,
}

impl<'a> Origin<'a> {
    /// The origin of runs under `config` (`instance` is `config.daemon.instance()`).
    pub fn of(config: &'a crate::settings::Config, instance: &'a str, service: bool) -> Self {
        Origin { source: config.source.kind(), instance, public_url: config.daemon.public_url.as_deref(), service }
    }
}

/// What a notification says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub condition: Condition,
    pub source: String,
    pub instance: String,
    /// The command that runs a sync where this run ran (`sync` or `trigger`).
    pub approve_with: &'static str,
    pub run: i64,
    pub status: String,
    pub created: u64,
    pub updated: u64,
    pub disabled: u64,
    pub deleted: u64,
    pub failed: u64,
    pub held_back: u64,
    /// The first three item errors.
    pub errors: Vec<String>,
    /// `/status`, when `daemon.public_url` is set.
    pub status_url: Option<String>,
}

impl Message {
    pub fn new(condition: Condition, record: &RunRecord, origin: Origin<'_>, items: &[ItemRecord]) -> Message {
        let mut errors: Vec<String> = items
            .iter()
            .filter(|i| {
                use crate::reconcile::Outcome::{Conflict, Failed, HeldBack, Invalid, Refused};
                matches!(i.outcome, Failed | Refused | Invalid | Conflict | HeldBack)
            })
            .filter_map(|i| {
                let what = i.source_id.as_deref().or(i.target_id.as_deref()).unwrap_or("-");
                i.error.as_deref().map(|e| format!("{} {} {what}: {}", i.kind, i.op, crate::redact::excerpt(e, 200)))
            })
            .take(3)
            .collect();
        if errors.is_empty()
            && let Some(m) = &record.message
        {
            errors.push(crate::redact::excerpt(m, 300));
        }
        Message {
            condition,
            source: origin.source.to_owned(),
            instance: origin.instance.to_owned(),
            approve_with: if origin.service { "trigger" } else { "sync" },
            run: record.id.0,
            status: record.status.as_str().to_owned(),
            created: record.count(Some(crate::reconcile::Verb::Create), crate::reconcile::Outcome::Ok),
            updated: record.count(Some(crate::reconcile::Verb::Update), crate::reconcile::Outcome::Ok),
            disabled: record.count(Some(crate::reconcile::Verb::Disable), crate::reconcile::Outcome::Ok),
            deleted: record.count(Some(crate::reconcile::Verb::Delete), crate::reconcile::Outcome::Ok),
            failed: record.count(None, crate::reconcile::Outcome::Failed) + record.count(None, crate::reconcile::Outcome::Refused),
            held_back: record.count(None, crate::reconcile::Outcome::HeldBack),
            errors,
            status_url: origin.public_url.map(|u| format!("{u}/status")),
        }
    }

    /// A test message (`orgsync notify test`).
    pub fn test(source: &str, instance: &str) -> Message {
        Message {
            condition: Condition::Recovered,
            source: source.to_owned(),
            instance: instance.to_owned(),
            approve_with: "sync",
            run: 0,
            status: "test".into(),
            created: 0,
            updated: 0,
            disabled: 0,
            deleted: 0,
            failed: 0,
            held_back: 0,
            errors: Vec::new(),
            status_url: None,
        }
    }

    /// The chat text.
    pub fn text(&self, language: Language) -> String {
        let zh = language == Language::Zh;
        let who = &self.instance;
        let headline = match (self.status.as_str(), self.condition, zh) {
            ("test", _, false) => format!("orgsync on {who}: a test message; this channel works"),
            ("test", _, true) => format!("orgsync（{who}）：测试消息，此通道可用"),
            (_, Condition::Failed, false) => format!("orgsync on {who}: sync run {} from {} FAILED", self.run, self.source),
            (_, Condition::Failed, true) => format!("orgsync（{who}）：来自 {} 的同步 #{} 失败", self.source, self.run),
            (_, Condition::Partial, false) => format!("orgsync on {who}: sync run {} from {} was partial", self.run, self.source),
            (_, Condition::Partial, true) => format!("orgsync（{who}）：来自 {} 的同步 #{} 部分完成", self.source, self.run),
            (_, Condition::HeldBack, false) => {
                format!("orgsync on {who}: sync run {} from {} held back {} deletions for approval", self.run, self.source, self.held_back)
            }
            (_, Condition::HeldBack, true) => {
                format!("orgsync（{who}）：来自 {} 的同步 #{} 暂缓了 {} 项删除，等待批准", self.source, self.run, self.held_back)
            }
            (_, Condition::Recovered, false) => {
                format!("orgsync on {who}: sync from {} recovered (run {} succeeded)", self.source, self.run)
            }
            (_, Condition::Recovered, true) => format!("orgsync（{who}）：来自 {} 的同步已恢复（#{} 成功）", self.source, self.run),
        };
        if self.status == "test" {
            return headline;
        }
        let mut lines = vec![headline];
        lines.push(if zh {
            format!(
                "状态 {}；新建 {}，更新 {}，停用 {}，删除 {}，失败 {}，暂缓 {}",
                self.status, self.created, self.updated, self.disabled, self.deleted, self.failed, self.held_back
            )
        } else {
            format!(
                "status {}; created {}, updated {}, disabled {}, deleted {}, failed {}, held back {}",
                self.status, self.created, self.updated, self.disabled, self.deleted, self.failed, self.held_back
            )
        });
        for e in &self.errors {
            lines.push(format!("- {e}"));
        }
        if self.condition != Condition::Recovered {
            lines.push(if zh {
                format!("查看：orgsync runs show {}", self.run)
            } else {
                format!("See: orgsync runs show {}", self.run)
            });
        }
        if self.condition == Condition::HeldBack {
            lines.push(if zh {
                format!("确认后批准：orgsync {} --allow-deletes {}", self.approve_with, self.held_back)
            } else {
                format!("To approve: orgsync {} --allow-deletes {}", self.approve_with, self.held_back)
            });
        }
        if let Some(u) = &self.status_url {
            lines.push(u.clone());
        }
        lines.join("\n")
    }

    /// The generic webhook's JSON.
    pub fn json(&self) -> Value {
        json!({
            "event": self.condition.as_str(), "source": self.source, "instance": self.instance, "run_id": self.run, "status": self.status,
            "counts": {"created": self.created, "updated": self.updated, "disabled": self.disabled, "deleted": self.deleted,
                       "failed": self.failed, "held_back": self.held_back},
            "errors": self.errors,
            "next": if self.condition == Condition::Recovered { Vec::new() } else {
                let mut next = vec![format!("orgsync runs show {}", self.run)];
                if self.condition == Condition::HeldBack { next.push(format!("orgsync {} --allow-deletes {}", self.approve_with, self.held_back)); }
                next
            },
            "status_url": self.status_url,
            "text": self.text(Language::En),
        })
    }
}
