//! orgsync keeps a target system's users and departments in step with one
//! identity source.
//!
//! Map of the crate (the core decides, the edges do I/O; `docs/design.md`
//! names every module):
//! - [`model`]: departments, users, snapshots, id newtypes — plain data;
//! - [`reconcile`]: the pure `plan(source, target, bindings, policy)`, the
//!   scope, the guard, the memory of values a target does not keep, retries;
//! - [`config`]: load TOML + `ORGSYNC__*` env, validate, build typed config
//!   (knowing no component); [`settings`]: that config with orgsync's
//!   sources and targets;
//! - [`sources`]: identity sources (file, LDAP/AD, Feishu/Lark, DingTalk,
//!   WeCom, WeLink, Entra ID), each behind `IdentitySource`;
//! - [`targets`]: target systems (SCIM 2.0, LDAP, REST with a Keycloak
//!   preset, file), each behind `Target`;
//! - [`ldap`]: one LDAP connection (TLS, bind, paged search) for the LDAP
//!   source and target; [`token`]: the bearer-token cache the SaaS sources
//!   and the REST target share; [`http_client`]: what every HTTP client
//!   shares (the builder, `Retry-After`, a transport error's causes);
//! - [`mirror`]: the SQLite mirror — bindings, runs, run items, the
//!   request log, failing objects, notification state;
//! - [`sync`]: one run: fetch -> reconcile -> apply -> record; `sync::worker`
//!   runs one at a time, taking triggers from [`trigger`]'s coalescing queue;
//! - [`notify`]: run notifications to chat tools: deciding (pure) and sending;
//! - [`schedule`]: when runs happen; [`clock`]: the wall clock, injectable;
//!   [`http`]: /metrics /healthz /readyz /status POST /sync; [`app`]: the
//!   daemon (`orgsync run`) wiring, signals, systemd notify, shutdown;
//! - [`cli`]: the command line; [`telemetry`]: logs and metric names;
//!   [`redact`]: masks every known secret in whatever leaves the process.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#![warn(missing_debug_implementations)]

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod events;
pub mod http;
pub mod http_client;
pub mod json_lists;
pub mod ldap;
pub mod mapping;
pub mod mirror;
pub mod model;
pub mod notify;
pub mod reconcile;
pub mod redact;
pub mod schedule;
pub mod settings;
pub mod sources;
pub mod sync;
pub mod targets;
pub mod telemetry;
pub mod token;
pub mod trigger;
pub mod web;
