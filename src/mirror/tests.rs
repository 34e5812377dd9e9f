use super::*;
use crate::model::{Kind, SourceId, TargetId};
use crate::reconcile::{Field, Outcome, Verb};
use std::collections::BTreeMap;

#[test]
fn outcomes_and_bindings_survive_reopening_and_crashed_runs_read_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mirror::open(dir.path()).unwrap();
    let run = m.start_run("manual").unwrap();
    let (u1, t1) = (SourceId::from("u1"), TargetId::from("t1"));
    let row = ItemRow {
        kind: Kind::User,
        op: Verb::Create,
        source_id: Some(&u1),
        target_id: Some(&t1),
        outcome: Outcome::Ok,
        error: None,
        changes: None,
    };
    m.record(run, &row, BindingChange::Set { source_id: "u1".into(), target_id: "t1".into(), hash: Some("h".into()) }).unwrap();
    drop(m); // a crash: the run is still `running`
    let m = Mirror::open(dir.path()).unwrap();
    assert_eq!(m.bindings().unwrap().users.get(&SourceId::from("u1")), Some(&TargetId::from("t1")));
    assert_eq!(m.mark_interrupted().unwrap(), 1);
    let r = m.run(run).unwrap().unwrap();
    assert_eq!(r.status, RunStatus::Failed);
    assert!(r.message.unwrap().contains("interrupted"));
    assert_eq!(r.counts.get("user.create.ok"), Some(&1));
}

#[test]
fn binding_a_target_moves_it_away_from_its_previous_source() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mirror::open(dir.path()).unwrap();
    let run = m.start_run("manual").unwrap();
    let set = |s: &str| BindingChange::Set { source_id: s.into(), target_id: "t1".into(), hash: None };
    let row =
        ItemRow { kind: Kind::User, op: Verb::Bind, source_id: None, target_id: None, outcome: Outcome::Ok, error: None, changes: None };
    m.record(run, &row, set("old")).unwrap();
    m.record(run, &row, set("new")).unwrap();
    let b = m.bindings().unwrap();
    assert_eq!(b.users.len(), 1);
    assert_eq!(b.users.get(&SourceId::from("new")), Some(&TargetId::from("t1")));
}

#[test]
fn a_second_lock_on_the_state_dir_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _first = StateLock::acquire(dir.path()).unwrap();
    let err = StateLock::acquire(dir.path()).unwrap_err();
    assert!(err.to_string().contains("another orgsync process holds the lock"), "{err}");
}

#[test]
fn a_missing_mirror_opens_read_only_as_none() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Mirror::open_read_only(dir.path()).unwrap().is_none());
    assert!(!dir.path().join(DB_FILE).exists());
}

#[test]
fn many_items_are_recorded_in_one_call_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mirror::open(dir.path()).unwrap();
    let run = m.start_run("manual").unwrap();
    let ids: Vec<SourceId> = (0..3).map(|i| SourceId(format!("u{i}"))).collect();
    let rows: Vec<ItemRow<'_>> = ids
        .iter()
        .map(|s| ItemRow {
            kind: Kind::User,
            op: Verb::Create,
            source_id: Some(s),
            target_id: None,
            outcome: Outcome::NotAttempted,
            error: None,
            changes: None,
        })
        .collect();
    m.record_all(run, &rows).unwrap();
    let r = m.finish_run(run, RunStatus::Partial, None).unwrap();
    assert_eq!(r.counts.get("user.create.not_attempted"), Some(&3));
    assert_eq!(
        (
            r.count(Some(crate::reconcile::Verb::Create), crate::reconcile::Outcome::NotAttempted),
            r.count(None, crate::reconcile::Outcome::NotAttempted),
            r.count(Some(crate::reconcile::Verb::Create), crate::reconcile::Outcome::Ok)
        ),
        (3, 3, 0)
    );
    assert_eq!(m.items(run).unwrap().len(), 3);
}

#[test]
fn old_runs_and_their_items_are_pruned_keeping_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mirror::open(dir.path()).unwrap();
    let u = SourceId::from("u1");
    let mut runs = Vec::new();
    for _ in 0..5 {
        let run = m.start_run("manual").unwrap();
        let row = ItemRow {
            kind: Kind::User,
            op: Verb::Update,
            source_id: Some(&u),
            target_id: None,
            outcome: Outcome::Ok,
            error: None,
            changes: None,
        };
        m.record(run, &row, BindingChange::None).unwrap();
        m.finish_run(run, RunStatus::Succeeded, None).unwrap();
        runs.push(run);
    }
    assert_eq!(m.prune_runs(2).unwrap(), 3);
    assert_eq!(m.runs(10).unwrap().iter().map(|r| r.id).collect::<Vec<_>>(), [runs[4], runs[3]]);
    assert!(m.items(runs[0]).unwrap().is_empty(), "the items went with their run");
    assert_eq!(m.items(runs[4]).unwrap().len(), 1);
    assert_eq!(m.prune_runs(2).unwrap(), 0, "nothing more to prune");
    assert_eq!(m.prune_runs(100).unwrap(), 0);
}

#[test]
fn pruning_keeps_the_last_success_when_every_newer_run_was_partial() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mirror::open(dir.path()).unwrap();
    let ok = m.start_run("manual").unwrap();
    m.finish_run(ok, RunStatus::Succeeded, None).unwrap();
    let when = m.last_success().unwrap();
    assert!(when.is_some());
    for _ in 0..5 {
        let run = m.start_run("schedule").unwrap();
        m.finish_run(run, RunStatus::Partial, Some("1 of 2 operations failed")).unwrap();
    }
    m.prune_runs(2).unwrap();
    assert_eq!(m.last_success().unwrap(), when, "the last success was pruned: the no-success alert would go blind");
    assert_eq!(m.runs(10).unwrap().len(), 3, "the two newest and the last success");
}

/// The memberships and parents a run sent count once it succeeded (a crash,
/// a failure or a partial run may have kept the target from writing them), and are
/// forgotten when the target's deferred writes failed; other fields count
/// at once.
#[test]
fn sent_links_count_only_from_a_run_that_ended_and_wrote_them() {
    use crate::reconcile::unkept::{Sent, SentValue};
    let dir = tempfile::tempdir().unwrap();
    let m = Mirror::open(dir.path()).unwrap();
    let u1 = SourceId::from("u1");
    let row = ItemRow {
        kind: Kind::User,
        op: Verb::Create,
        source_id: Some(&u1),
        target_id: None,
        outcome: Outcome::Ok,
        error: None,
        changes: None,
    };
    let send = |run: RunId| {
        let sent = [Field::Name, Field::Departments]
            .map(|field| SentValue { field, hash: "n".into(), from: "o".into(), state: Sent::Sent })
            .to_vec();
        m.record_batch(run, &[Recorded { item: row, binding: BindingChange::None, sent }]).unwrap();
    };
    let fields = |m: &Mirror| {
        let mut f: Vec<Field> = m.unkept().unwrap().into_keys().map(|(_, _, f)| f).collect();
        f.sort_by_key(|f| f.as_str());
        f
    };
    let run = m.start_run("manual").unwrap();
    send(run);
    assert_eq!(fields(&m), [Field::Name], "running (or crashed): only the name counts");
    m.finish_run(run, RunStatus::Failed, Some("target unreachable")).unwrap();
    assert_eq!(fields(&m), [Field::Name], "failed: the memberships may not have been written");
    let run = m.start_run("manual").unwrap();
    send(run);
    m.finish_run(run, RunStatus::Partial, None).unwrap();
    assert_eq!(fields(&m), [Field::Name], "partial: a department it left may still be there");
    let run = m.start_run("manual").unwrap();
    send(run);
    m.finish_run(run, RunStatus::Succeeded, None).unwrap();
    assert_eq!(fields(&m), [Field::Departments, Field::Name]);
    m.forget_sent_links(run).unwrap();
    assert_eq!(fields(&m), [Field::Name], "the deferred writes failed: sent again");
}

#[test]
fn every_op_and_outcome_reads_back_as_written_and_an_unknown_one_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mirror::open(dir.path()).unwrap();
    let run = m.start_run("manual").unwrap();
    let verbs: Vec<Verb> = Verb::ALLOWED.iter().map(|s| s.parse().unwrap()).collect();
    let outcomes: Vec<Outcome> = Outcome::ALLOWED.iter().map(|s| s.parse().unwrap()).collect();
    let pairs: Vec<(Verb, Outcome)> =
        outcomes.iter().enumerate().map(|(i, &o)| (verbs[i % verbs.len()], o)).chain(verbs.iter().map(|&v| (v, Outcome::Ok))).collect();
    let rows: Vec<ItemRow<'_>> = pairs
        .iter()
        .map(|&(op, outcome)| ItemRow { kind: Kind::User, op, source_id: None, target_id: None, outcome, error: None, changes: None })
        .collect();
    m.record_all(run, &rows).unwrap();
    let back: Vec<(Verb, Outcome)> = m.items(run).unwrap().iter().map(|i| (i.op, i.outcome)).collect();
    assert_eq!(back, pairs);
    let r = m.run(run).unwrap().unwrap();
    assert_eq!(r.count(Some(Verb::Create), Outcome::Ok), 2, "the first outcome (ok) went with create too");
    assert_eq!(r.count(None, Outcome::Ok), verbs.len() as u64 + 1);
    m.with(|c| c.execute("UPDATE run_items SET outcome = 'maybe'", [])).unwrap();
    let e = m.items(run).unwrap_err().to_string();
    assert!(e.contains("unknown Outcome: \"maybe\""), "{e}");
}

#[test]
fn a_rejection_lasts_until_an_approval_or_a_full_run_holding_nothing_back() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mirror::open(dir.path()).unwrap();
    let action = |what: &str| crate::mirror::AdminAction {
        at: "2026-12-03T00:00:00Z".into(),
        who: "token".into(),
        peer: "10.0.0.1".into(),
        action: what.into(),
        detail: "3 removals".into(),
    };
    assert_eq!(m.rejected().unwrap(), None);
    m.record_action(&action("reject"), Some("abc")).unwrap();
    m.record_action(&action("retry"), None).unwrap();
    assert_eq!(m.rejected().unwrap().as_deref(), Some("abc"), "a retry does not end it");
    m.end_rejection("2026-12-03T01:00:00Z").unwrap();
    assert_eq!(m.rejected().unwrap(), None);
    assert_eq!(m.actions(1).unwrap()[0].who, "orgsync");
    m.end_rejection("2026-12-03T02:00:00Z").unwrap();
    assert_eq!(m.actions(5).unwrap().iter().filter(|a| a.action == "expire").count(), 1, "ended once");
    m.record_action(&action("reject"), Some("def")).unwrap();
    m.record_action(&action("approve"), Some("def")).unwrap();
    assert_eq!(m.rejected().unwrap(), None);
}

/// Closing a run counts the items it committed as they were written: the
/// counts SQL gives, through any clone, without the items of a transaction
/// that failed; a run another mirror started is counted in SQL.
#[test]
fn a_run_s_counts_are_the_items_it_committed() {
    let dir = tempfile::tempdir().unwrap();
    let m = Mirror::open(dir.path()).unwrap();
    let run = m.start_run("manual").unwrap();
    let (u1, t1) = (SourceId::from("u1"), TargetId::from("t1"));
    let row = |kind, op, outcome, changes| ItemRow { kind, op, source_id: Some(&u1), target_id: Some(&t1), outcome, error: None, changes };
    let set = BindingChange::Set { source_id: "u1".into(), target_id: "t1".into(), hash: None };
    let created = Recorded { item: row(Kind::User, Verb::Create, Outcome::Ok, None), binding: set, sent: Vec::new() };
    m.clone().record_batch(run, &[created]).unwrap();
    let failed = row(Kind::User, Verb::Update, Outcome::Failed, None);
    m.record_all(run, &[failed, failed, row(Kind::Department, Verb::Delete, Outcome::HeldBack, None)]).unwrap();
    m.fill_the_disk();
    let long = "x".repeat(200_000);
    assert!(m.record_all(run, &[row(Kind::User, Verb::Update, Outcome::Ok, Some(&long))]).is_err(), "the disk is full");
    m.with(|c| c.pragma_update(None, "max_page_count", 1_000_000)).unwrap();
    let in_sql = m.with(|c| runs::counts(c, run)).unwrap();
    let want: BTreeMap<String, u64> =
        [("user.create.ok", 1), ("user.update.failed", 2), ("department.delete.held_back", 1)].map(|(k, n)| (k.to_owned(), n)).into();
    assert_eq!(in_sql, want);
    assert_eq!(m.finish_run(run, RunStatus::Partial, None).unwrap().counts, want);

    let other = Mirror::open(dir.path()).unwrap();
    let theirs = other.start_run("manual").unwrap();
    m.record_all(theirs, &[failed]).unwrap();
    other.record_all(theirs, &[failed]).unwrap();
    let r = m.finish_run(theirs, RunStatus::Failed, None).unwrap();
    assert_eq!(r.counts, [("user.update.failed".to_owned(), 2)].into());
}
