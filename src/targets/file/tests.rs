//! The file target on its own: what is written reads back, and an idle
//! run leaves the file alone.

use super::*;
use crate::reconcile::{Change, DeptSpec, UserSpec};
use crate::targets::{DepartmentCreate, DepartmentUpdate, UserCreate, Write};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}

#[test]
fn what_is_written_reads_back_and_an_idle_run_leaves_the_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out/directory.json");
    rt().block_on(async {
        let t = FileTarget::new(path.clone());
        assert_eq!(t.load().await.unwrap(), TargetSnapshot::default(), "no file yet: empty");
        let spec = DeptSpec { external_id: "d1".into(), name: "Sales".into(), parent: None, leaders: vec![], leader_accounts: vec![] };
        let d = t.write(Write::CreateDepartment(DepartmentCreate { spec: &spec, parent: None })).await.unwrap().unwrap();
        let user = UserSpec { external_id: "u1".into(), username: Some("ann".into()), active: true, ..UserSpec::default() };
        let departments = [d.clone()];
        t.write(Write::CreateUser(UserCreate { spec: &user, departments: &departments, manager: None })).await.unwrap().unwrap();
        let renamed = DeptSpec { name: "Revenue".into(), ..spec.clone() };
        let changes = [Change { field: Field::Name, from: Some("Sales".into()), to: Some("Revenue".into()) }];
        let update = DepartmentUpdate { id: &d, spec: &renamed, changes: &changes, old_parent: None, parent: None, leaders: &[] };
        assert_eq!(t.write(Write::UpdateDepartment(update)).await.unwrap(), None, "an update makes nothing");
        t.flush().await.unwrap();

        let again = FileTarget::new(path.clone());
        let read = again.load().await.unwrap();
        assert_eq!(read.departments.len(), 1);
        assert_eq!((read.departments[0].name.as_str(), read.departments[0].external_id.as_deref()), ("Revenue", Some("d1")));
        assert_eq!(read.users.len(), 1);
        assert_eq!(read.users[0].username.as_deref(), Some("ann"));
        assert_eq!(read.users[0].departments, [d]);

        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        again.flush().await.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), before, "nothing changed: not written");
        assert!(!path.with_extension("json.tmp").exists());
    });
}

/// A load keeps no copy of the document: the first change reads it again,
/// and updates, disables, deletes and creates after it all land in it.
#[test]
fn changes_after_a_load_land_in_the_document_read_again() {
    use crate::targets::UserUpdate;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("directory.json");
    rt().block_on(async {
        let t = FileTarget::new(path.clone());
        t.load().await.unwrap();
        let mut ids = Vec::new();
        for n in ["ann", "bob", "cy"] {
            let user = UserSpec { external_id: n.into(), username: Some(n.into()), active: true, ..UserSpec::default() };
            ids.push(t.write(Write::CreateUser(UserCreate { spec: &user, departments: &[], manager: None })).await.unwrap().unwrap());
        }
        t.flush().await.unwrap();

        // The next run: loaded, then changed.
        assert_eq!(t.load().await.unwrap().users.len(), 3);
        let renamed = UserSpec { external_id: "bob".into(), username: Some("robert".into()), active: true, ..UserSpec::default() };
        let changes = [Change { field: Field::Username, from: Some("bob".into()), to: Some("robert".into()) }];
        let update = UserUpdate { id: &ids[1], spec: &renamed, changes: &changes, old_departments: &[], departments: &[], manager: None };
        t.write(Write::UpdateUser(update)).await.unwrap();
        t.write(Write::DeleteUser(crate::targets::UserDelete { id: &ids[0], departments: &[] })).await.unwrap();
        // After a delete the positions moved: the index is made again.
        t.write(Write::DisableUser(&ids[2])).await.unwrap();
        let dee = UserSpec { external_id: "dee".into(), username: Some("dee".into()), active: true, ..UserSpec::default() };
        let new = t.write(Write::CreateUser(UserCreate { spec: &dee, departments: &[], manager: None })).await.unwrap().unwrap();
        let changes = [Change { field: Field::Username, from: Some("dee".into()), to: Some("dora".into()) }];
        let dora = UserSpec { username: Some("dora".into()), ..dee.clone() };
        let update = UserUpdate { id: &new, spec: &dora, changes: &changes, old_departments: &[], departments: &[], manager: None };
        t.write(Write::UpdateUser(update)).await.unwrap();
        let missing = crate::model::TargetId::from("u-gone");
        let update = UserUpdate { id: &missing, spec: &dora, changes: &changes, old_departments: &[], departments: &[], manager: None };
        assert!(t.write(Write::UpdateUser(update)).await.is_err(), "an unknown id is an error, not a silent no-op");
        t.flush().await.unwrap();

        let read = FileTarget::new(path.clone()).load().await.unwrap();
        let users: Vec<(&str, bool)> = read.users.iter().map(|u| (u.username.as_deref().unwrap(), u.active)).collect();
        assert_eq!(users, [("robert", true), ("cy", false), ("dora", true)]);
    });
}

/// A flush after a load that found no file and no change writes an empty
/// directory, but never over a document that appeared since.
#[test]
fn a_flush_never_writes_an_empty_directory_over_a_document() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("directory.json");
    rt().block_on(async {
        let t = FileTarget::new(path.clone());
        assert_eq!(t.load().await.unwrap(), TargetSnapshot::default());
        let other = FileTarget::new(path.clone());
        let user = UserSpec { external_id: "u1".into(), username: Some("ann".into()), active: true, ..UserSpec::default() };
        other.write(Write::CreateUser(UserCreate { spec: &user, departments: &[], manager: None })).await.unwrap();
        other.flush().await.unwrap();
        t.flush().await.unwrap();
        assert_eq!(FileTarget::new(path.clone()).load().await.unwrap().users.len(), 1, "the document that appeared is kept");

        let empty = dir.path().join("empty.json");
        let t = FileTarget::new(empty.clone());
        t.load().await.unwrap();
        t.flush().await.unwrap();
        assert!(empty.exists(), "no file and no change: an empty directory is written");
    });
}

/// The document is read record by record (`json_lists`); whatever it
/// holds, the answer is serde_json's reader's: the same snapshot, or the
/// same error.
#[test]
fn the_document_reads_as_serde_json_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("directory.json");
    let user = r#"{"id": "u-1", "external_id": "e1", "username": "ann", "name": null, "email": null, "mobile": null, "employee_no": null,
        "nickname": null, "title": "a \"quoted\" [title], {x}", "department": null, "departments": ["d-1"], "active": true}"#;
    let dept = r#"{"id": "d-1", "external_id": "d1", "name": "Sales", "parent": null}"#;
    let docs = [
        format!(r#"{{"departments": [{dept}], "users": [{user}, {user}]}}"#),
        format!(r#"{{"users": [{user}], "departments": []}}"#),
        format!(r#"{{"departments": [{dept}], "users": [{user}], "extra": 1}}"#),
        format!(r#"{{"departments": [{dept}]}}"#),
        format!(r#"{{"departments": [{dept}], "users": [{user},]}}"#),
        format!(r#"{{"departments": [{dept}], "users": [{{"id": "u-2"}}]}}"#),
        format!(r#"{{"departments": [{dept}], "users": [{user}]"#),
        "\u{FEFF}{\"departments\": [], \"users\": []}".to_string(),
        String::new(),
    ];
    let mut read = 0;
    for doc in docs {
        std::fs::write(&path, &doc).unwrap();
        let got = client::read_now(&path).map_err(|e| e.to_string());
        let want = serde_json::from_str::<TargetSnapshot>(&doc)
            .map(Some)
            .map_err(|e| TargetError::InvalidFile { path: path.clone(), message: e.to_string() }.to_string());
        assert_eq!(got, want, "{doc}");
        read += usize::from(got.is_ok());
    }
    assert_eq!(read, 3, "three of the documents are readable");
}
