//! How a node's view of a table's files combines its own commits with
//! refreshed manifest states.

use super::*;

fn f(name: &str) -> FileMeta {
    FileMeta {
        path: name.into(),
        size: 1,
        rows: 1,
        hour_start: 0,
        max_seq: 0,
        min_ts: 0,
        max_ts: 0,
        node: None,
        services: None,
    }
}

fn paths(t: &TableFiles) -> Vec<&str> {
    let mut v: Vec<&str> = t.files.iter().map(|f| f.path.as_str()).collect();
    v.sort_unstable();
    v
}

/// This node's commits finish out of version order, and a refresh may
/// overtake one: every file is listed exactly once either way.
#[test]
fn local_commits_and_refreshes_combine_into_one_list() {
    let mut t = TableFiles::default();
    t.commit(2, Vec::new(), vec![f("b")]);
    t.commit(1, Vec::new(), vec![f("a")]);
    assert_eq!(paths(&t), ["a", "b"]);
    assert_eq!(t.version, 2);
    // Another node committed "x" (3); this node "c" (4) and "d" (5), but
    // "d" reaches the buffer only after the refresh that holds it.
    t.commit(4, Vec::new(), vec![f("c")]);
    assert!(t.refresh(5, vec![f("a"), f("b"), f("x"), f("c"), f("d")]));
    assert_eq!(paths(&t), ["a", "b", "c", "d", "x"]);
    t.commit(5, Vec::new(), vec![f("d")]);
    assert_eq!(paths(&t), ["a", "b", "c", "d", "x"], "no duplicate");
    // A commit after the refreshed state is applied on top; a later
    // refresh that predates it keeps it.
    t.commit(7, vec!["a".into(), "b".into()], vec![f("ab")]);
    assert!(t.refresh(6, vec![f("a"), f("b"), f("x"), f("c"), f("d"), f("y")]));
    assert_eq!(paths(&t), ["ab", "c", "d", "x", "y"]);
    assert_eq!(t.version, 7);
    // Another node replaced "x" at 8: a refresh shows it gone.
    assert!(t.refresh(8, vec![f("ab"), f("c"), f("d"), f("y"), f("x2")]));
    assert_eq!(paths(&t), ["ab", "c", "d", "x2", "y"]);
    // A refresh older than the last one is ignored.
    assert!(!t.refresh(7, vec![f("ab")]));
    assert_eq!(t.files.len(), 5);
    assert!(t.local.is_empty());
}
