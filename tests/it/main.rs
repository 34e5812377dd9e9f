//! Integration tests: through the built binary, against a real
//! `scim2-server` (PyPI). One test binary (each extra file is another link).

mod bad_input;
mod browser;
mod cli;
mod converge;
mod crash;
mod daemon;
mod dingtalk;
mod django;
mod docs;
mod ds389;
mod duplicates;
mod entra;
mod explain;
mod fake;
mod fake_dingtalk;
mod fake_feishu;
mod fake_graph;
mod fake_rest;
mod fake_wecom;
mod fake_welink;
#[path = "../servers/fast_scim.rs"]
mod fast_scim;
mod feishu;
mod harness;
mod keycloak;
mod ldap;
mod ldap_target;
mod managers;
mod mapping;
mod notify;
mod on_demand;
mod packaging;
mod plan;
mod proxy;
mod rest;
mod samba;
mod scim;
mod scimmy;
mod scope;
mod secrets;
mod slapd;
mod web;
mod wecom;
mod welink;
