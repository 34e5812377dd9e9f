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
