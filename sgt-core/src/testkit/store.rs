//! Conformance cases for [`Store`](crate::store::Store).

use serde_json::json;

use crate::error::ErrorKind;
use crate::store::*;
use crate::types::*;

fn env(name: &str) -> EnvironmentName {
    EnvironmentName::parse(name).unwrap()
}

/// A new node for `host` in `environment` with hardware uuid `uuid`.
pub fn new_node(environment: &str, host: &str, uuid: &str, now: UnixSeconds) -> NewNode {
    NewNode {
        id: NodeId::generate(),
        key: NodeKey::generate(),
        environment: env(environment),
        host_identifier: HostIdentifier::parse(host).unwrap(),
        hardware_uuid: uuid.to_owned(),
        platform_type: "9".to_owned(),
        platform: "linux".to_owned(),
        host_details: json!({"system_info": {"hostname": host, "uuid": uuid}, "osquery_info": {"version": "5.23.1"}}),
        now,
        pending: false,
    }
}

/// The [`NodeRef`] of a stored node.
pub fn node_ref(node: &Node) -> NodeRef<'_> {
    NodeRef::of(node)
}

async fn enrolled(store: &dyn Store, host: &str) -> Node {
    store
        .enroll_node(new_node("default", host, &format!("uuid-{host}"), 1000))
        .await
        .unwrap()
}

/// Enrolling stores every field and the node is found by key and id.
pub async fn enroll_creates_a_node(store: &dyn Store) {
    let request = new_node("default", "web-01", "U1", 1000);
    let node = store.enroll_node(request.clone()).await.unwrap();
    assert_eq!(node.id, request.id);
    assert!(node.key.ct_eq(&request.key));
    assert_eq!(node.environment, request.environment);
    assert_eq!(node.host_identifier, request.host_identifier);
    assert_eq!(node.hardware_uuid, "U1");
    assert_eq!(node.platform_type, "9");
    assert_eq!(node.platform, "linux");
    assert_eq!(node.host_details, request.host_details);
    assert_eq!(node.osquery_version(), Some("5.23.1"));
    assert_eq!(node.enrolled_at, 1000);
    assert_eq!(node.last_seen, 1000);
    assert_eq!(store.node_by_key(&request.key).await.unwrap(), node);
    assert_eq!(store.node_by_id(&request.id).await.unwrap(), node);
}

/// Enrolling the same identity again keeps the id, replaces the key; the old key is dead.
pub async fn enroll_same_identity_rekeys(store: &dyn Store) {
    let first = store
        .enroll_node(new_node("default", "web-01", "U1", 1000))
        .await
        .unwrap();
    let mut again = new_node("default", "web-01", "U1", 2000);
    again.platform_type = "21".into();
    again.platform = "darwin".into();
    let second = store.enroll_node(again.clone()).await.unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(second.enrolled_at, 1000);
    assert_eq!(second.last_seen, 2000);
    assert_eq!(second.platform_type, "21");
    assert_eq!(second.platform, "darwin");
    assert!(second.key.ct_eq(&again.key));
    let old = store.node_by_key(&first.key).await.unwrap_err();
    assert_eq!(old.kind(), ErrorKind::NotFound);
    assert_eq!(store.node_by_key(&again.key).await.unwrap().id, first.id);
}

/// A different uuid, host identifier or environment is a different node.
pub async fn enroll_other_identity_creates_another_node(store: &dyn Store) {
    let a = store
        .enroll_node(new_node("default", "web-01", "U1", 1000))
        .await
        .unwrap();
    let b = store
        .enroll_node(new_node("default", "web-01", "U2", 1000))
        .await
        .unwrap();
    let c = store
        .enroll_node(new_node("default", "web-02", "U1", 1000))
        .await
        .unwrap();
    let d = store
        .enroll_node(new_node("other", "web-01", "U1", 1000))
        .await
        .unwrap();
    let mut ids = vec![a.id, b.id, c.id, d.id];
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);
}

/// Unknown keys and ids are `NotFound`.
pub async fn unknown_key_and_id_are_not_found(store: &dyn Store) {
    let e = store.node_by_key(&NodeKey::generate()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = store.node_by_id(&NodeId::generate()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = store.delete_node(&NodeId::generate()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

/// Listing returns nodes ordered by id, page by page, filtered by environment.
pub async fn list_nodes_pages_and_filters(store: &dyn Store) {
    for i in 0..5 {
        store
            .enroll_node(new_node("default", &format!("h{i}"), "", 1000))
            .await
            .unwrap();
    }
    store
        .enroll_node(new_node("other", "x", "", 1000))
        .await
        .unwrap();
    let all = store.list_nodes(&ListNodes::default()).await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_nodes(&ListNodes {
                environment: Some(env("default")),
                after: after.clone(),
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        after = Some(page.last().unwrap().id.clone());
        paged.extend(page);
    }
    assert_eq!(paged.len(), 5);
    assert!(paged.iter().all(|n| n.environment.as_str() == "default"));
}

/// Deleting a node makes its key and id unknown and drops its pending queries.
pub async fn delete_node_revokes_its_key(store: &dyn Store) {
    let node = enrolled(store, "web-01").await;
    let query = NewQuery {
        id: QueryId::generate(),
        sql: "SELECT 1;".into(),
        targets: QueryTargets {
            node_ids: vec![node.id.clone()],
            ..Default::default()
        },
        node_ids: vec![node.id.clone()],
        created_by: "tester".into(),
        created_at: 1000,
        expires_at: None,
    };
    store.create_query(&query).await.unwrap();
    store.delete_node(&node.id).await.unwrap();
    assert_eq!(
        store.node_by_key(&node.key).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.node_by_id(&node.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(store
        .take_pending_queries(node_ref(&node), 1001)
        .await
        .unwrap()
        .is_empty());
}

/// Keys stopped by a re-key or a delete are listed as revoked, from the time they stopped.
pub async fn revoked_keys_are_listed(store: &dyn Store) {
    let before = now_unix_ms() - 1;
    let first = store
        .enroll_node(new_node("default", "rotating", "R", 1000))
        .await
        .unwrap();
    let untouched = enrolled(store, "untouched").await;
    assert!(store.changed_keys_since(before).await.unwrap().is_empty());
    let rekeyed = store
        .enroll_node(new_node("default", "rotating", "R", 1001))
        .await
        .unwrap();
    store.delete_node(&rekeyed.id).await.unwrap();
    let revoked = store.changed_keys_since(before).await.unwrap();
    let mut keys: Vec<&NodeKey> = revoked.iter().map(|r| &r.key).collect();
    keys.sort();
    let mut expected = vec![&first.key, &rekeyed.key];
    expected.sort();
    assert_eq!(keys, expected);
    assert!(revoked.iter().all(|r| r.changed_at_ms >= before));
    assert!(
        revoked
            .windows(2)
            .all(|w| w[0].changed_at_ms <= w[1].changed_at_ms),
        "oldest first"
    );
    assert!(!keys.contains(&&untouched.key));
    let later = revoked.last().unwrap().changed_at_ms + 1;
    assert!(store.changed_keys_since(later).await.unwrap().is_empty());
}

/// `record_last_seen` updates many nodes, never backwards, ignoring unknown ids.
pub async fn last_seen_moves_forward_only(store: &dyn Store) {
    let a = enrolled(store, "a").await;
    let b = enrolled(store, "b").await;
    store
        .record_last_seen(&[
            (a.id.clone(), 5000),
            (b.id.clone(), 500),
            (NodeId::generate(), 9000),
        ])
        .await
        .unwrap();
    assert_eq!(store.node_by_id(&a.id).await.unwrap().last_seen, 5000);
    assert_eq!(store.node_by_id(&b.id).await.unwrap().last_seen, 1000);
    assert_eq!(store.node_by_key(&a.key).await.unwrap().last_seen, 5000);
    store.record_last_seen(&[]).await.unwrap();

    // Lists show the recorded time and filter by it.
    let seen = store
        .list_nodes(&ListNodes {
            seen_since: Some(4000),
            ..ListNodes::default()
        })
        .await
        .unwrap();
    let seen_ids: Vec<&NodeId> = seen.iter().map(|n| &n.id).collect();
    assert!(seen_ids.contains(&&a.id) && !seen_ids.contains(&&b.id));
    assert_eq!(seen.iter().find(|n| n.id == a.id).unwrap().last_seen, 5000);

    // Enrolling again (a re-key, at an older request time) keeps the later time.
    let again = store
        .enroll_node(new_node("default", "a", "uuid-a", 2000))
        .await
        .unwrap();
    assert_eq!(again.id, a.id);
    assert_eq!(store.node_by_id(&a.id).await.unwrap().last_seen, 5000);
    store
        .record_last_seen(&[(a.id.clone(), 6000)])
        .await
        .unwrap();
    assert_eq!(store.node_by_key(&again.key).await.unwrap().last_seen, 6000);
}

/// Environments are created, read, listed and deleted; duplicates are refused.
pub async fn environments_round_trip(store: &dyn Store) {
    let prod = Environment {
        name: env("prod"),
        config: json!({"schedule": {"q": {"query": "SELECT 1;", "interval": 60}}}),
        created_at: 10,
        config_updated_at: 10,
        config_version: 1,
        settings: Default::default(),
    };
    store.create_environment(&prod).await.unwrap();
    assert_eq!(
        store.create_environment(&prod).await.unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(store.environment(&prod.name).await.unwrap(), prod);
    let dev = Environment {
        name: env("dev"),
        ..prod.clone()
    };
    store.create_environment(&dev).await.unwrap();
    let names: Vec<String> = store
        .list_environments()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name.to_string())
        .collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]));
    assert!(names.contains(&"prod".to_owned()) && names.contains(&"dev".to_owned()));
    store.delete_environment(&dev.name).await.unwrap();
    assert_eq!(
        store.environment(&dev.name).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store
            .delete_environment(&dev.name)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

fn saved(name: &str, sql: &str, at: UnixSeconds) -> SavedQuery {
    SavedQuery {
        name: SavedQueryName::parse(name).unwrap(),
        sql: sql.to_owned(),
        description: format!("what {name} answers"),
        created_at: at,
        updated_at: at,
        updated_by: "alice".to_owned(),
    }
}

/// Saved queries are stored whole, listed by name, replaced keeping their creation time, and
/// deleted.
pub async fn saved_queries_round_trip(store: &dyn Store) {
    let users = saved("users", "SELECT * FROM users;", 10);
    assert_eq!(store.put_saved_query(&users).await.unwrap(), users);
    assert_eq!(store.saved_query(&users.name).await.unwrap(), users);
    let apps = saved("Apps.installed-1", "SELECT name FROM apps;", 11);
    store.put_saved_query(&apps).await.unwrap();
    let names: Vec<String> = store
        .list_saved_queries()
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.name.to_string())
        .collect();
    assert_eq!(names, ["Apps.installed-1", "users"]);

    let replacement = SavedQuery {
        sql: "SELECT uid, username FROM users;".to_owned(),
        description: String::new(),
        created_at: 20,
        updated_at: 20,
        updated_by: "bob".to_owned(),
        ..users.clone()
    };
    let stored = store.put_saved_query(&replacement).await.unwrap();
    let expected = SavedQuery {
        created_at: 10,
        ..replacement
    };
    assert_eq!(stored, expected);
    assert_eq!(store.saved_query(&users.name).await.unwrap(), expected);

    store.delete_saved_query(&users.name).await.unwrap();
    assert_eq!(
        store.saved_query(&users.name).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store
            .delete_saved_query(&users.name)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(store.list_saved_queries().await.unwrap(), [apps]);
}

/// A node enrolled pending stays pending through a re-enroll until approved, once; approval
/// lists its key as changed; node lists filter by it.
pub async fn approval_is_kept_and_given_once(store: &dyn Store) {
    let approved = enrolled(store, "approved").await;
    assert!(!approved.pending);
    let waiting = store
        .enroll_node(NewNode {
            pending: true,
            ..new_node("default", "waiting", "W", 1000)
        })
        .await
        .unwrap();
    assert!(waiting.pending);
    assert!(store.node_by_key(&waiting.key).await.unwrap().pending);
    let again = store
        .enroll_node(new_node("default", "waiting", "W", 1001))
        .await
        .unwrap();
    assert!(again.pending, "a re-enroll does not approve");
    let rekeyed_approved = store
        .enroll_node(NewNode {
            pending: true,
            ..new_node("default", "approved", "uuid-approved", 1001)
        })
        .await
        .unwrap();
    assert!(
        !rekeyed_approved.pending,
        "nor make an approved node pending"
    );
    let listed = |pending| ListNodes {
        pending: Some(pending),
        ..Default::default()
    };
    let ids = |nodes: Vec<Node>| nodes.into_iter().map(|n| n.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_nodes(&listed(true)).await.unwrap()),
        std::slice::from_ref(&waiting.id)
    );
    assert_eq!(
        ids(store.list_nodes(&listed(false)).await.unwrap()),
        std::slice::from_ref(&approved.id)
    );

    let before = now_unix_ms() - 1;
    assert!(store.approve_node(&waiting.id).await.unwrap());
    assert!(!store.approve_node(&waiting.id).await.unwrap());
    assert!(!store.approve_node(&approved.id).await.unwrap());
    assert!(
        !store.node_by_key(&again.key).await.unwrap().pending,
        "still its key"
    );
    let changed = store.changed_keys_since(before).await.unwrap();
    assert!(changed.iter().any(|k| k.key == again.key));
    assert!(!changed.iter().any(|k| k.key == rekeyed_approved.key));
    assert!(store.list_nodes(&listed(true)).await.unwrap().is_empty());
    assert_eq!(
        store
            .approve_node(&NodeId::generate())
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

fn label(name: &str, environment: Option<&str>, query: Option<&str>, at: UnixSeconds) -> Label {
    Label {
        name: LabelName::parse(name).unwrap(),
        environment: environment.map(|e| EnvironmentName::parse(e).unwrap()),
        query: query.map(str::to_owned),
        platform: query.map(|_| "linux".to_owned()),
        description: format!("the {name} hosts"),
        created_at: at,
        updated_at: at,
        updated_by: "alice".to_owned(),
    }
}

/// Labels are stored whole, listed by name, replaced keeping their creation time, and
/// deleted.
pub async fn labels_round_trip(store: &dyn Store) {
    let web = label("web", Some("default"), None, 10);
    assert_eq!(store.put_label(&web).await.unwrap(), web);
    assert_eq!(store.label(&web.name).await.unwrap(), web);
    let debian = label(
        "Debian.12",
        None,
        Some("SELECT 1 FROM os_version WHERE name = 'Debian GNU/Linux';"),
        11,
    );
    store.put_label(&debian).await.unwrap();
    let names: Vec<String> = store
        .list_labels()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name.to_string())
        .collect();
    assert_eq!(names, ["Debian.12", "web"]);

    let replacement = Label {
        query: Some("SELECT 1;".to_owned()),
        platform: None,
        environment: None,
        description: String::new(),
        created_at: 20,
        updated_at: 20,
        updated_by: "bob".to_owned(),
        ..web.clone()
    };
    let expected = Label {
        created_at: 10,
        ..replacement.clone()
    };
    assert_eq!(store.put_label(&replacement).await.unwrap(), expected);
    assert_eq!(store.label(&web.name).await.unwrap(), expected);

    store.delete_label(&web.name).await.unwrap();
    assert_eq!(
        store.label(&web.name).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.delete_label(&web.name).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(store.list_labels().await.unwrap(), [debian]);
}

/// Membership is set and cleared once, shows in every read of the node, filters node lists,
/// survives a re-enroll, lists the node's key as changed, and goes with the label or the node.
pub async fn label_membership(store: &dyn Store) {
    let web = label("web", None, None, 10);
    let db = label("db", None, None, 10);
    store.put_label(&web).await.unwrap();
    store.put_label(&db).await.unwrap();
    let a = enrolled(store, "a").await;
    let b = enrolled(store, "b").await;
    let c = enrolled(store, "c").await;
    assert!(a.labels.is_empty());

    let before = now_unix_ms() - 1;
    assert!(store
        .set_label_member(&web.name, &a.id, true)
        .await
        .unwrap());
    assert!(!store
        .set_label_member(&web.name, &a.id, true)
        .await
        .unwrap());
    assert!(store.set_label_member(&db.name, &a.id, true).await.unwrap());
    assert!(store
        .set_label_member(&web.name, &c.id, true)
        .await
        .unwrap());
    assert!(!store
        .set_label_member(&web.name, &b.id, false)
        .await
        .unwrap());
    let changed = store.changed_keys_since(before).await.unwrap();
    assert!(changed.iter().any(|k| k.key == a.key));
    assert!(changed.iter().any(|k| k.key == c.key));
    assert!(!changed.iter().any(|k| k.key == b.key), "b did not change");

    let both = vec![db.name.clone(), web.name.clone()];
    assert_eq!(
        store.node_by_key(&a.key).await.unwrap().labels,
        both,
        "still its key"
    );
    assert_eq!(store.node_by_id(&a.id).await.unwrap().labels, both);
    let in_web = |after: Option<NodeId>, limit| ListNodes {
        label: Some(web.name.clone()),
        after,
        limit,
        ..Default::default()
    };
    let ids = |nodes: Vec<Node>| nodes.into_iter().map(|n| n.id).collect::<Vec<_>>();
    let mut members = vec![a.id.clone(), c.id.clone()];
    members.sort();
    assert_eq!(
        ids(store.list_nodes(&in_web(None, 0)).await.unwrap()),
        members
    );
    let first = store.list_nodes(&in_web(None, 1)).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        ids(store
            .list_nodes(&in_web(Some(first[0].id.clone()), 0))
            .await
            .unwrap()),
        members[1..]
    );
    let listed = store
        .nodes_by_ids(std::slice::from_ref(&a.id))
        .await
        .unwrap();
    assert_eq!(listed[0].labels, both);
    let with_other_filter = ListNodes {
        search: Some("c".to_owned()),
        ..in_web(None, 0)
    };
    assert_eq!(
        ids(store.list_nodes(&with_other_filter).await.unwrap()),
        std::slice::from_ref(&c.id)
    );

    let rekeyed = store
        .enroll_node(new_node("default", "a", "uuid-a", 2000))
        .await
        .unwrap();
    assert_eq!(rekeyed.labels, both, "a re-enroll keeps the labels");
    assert_eq!(store.node_by_key(&rekeyed.key).await.unwrap().labels, both);

    assert!(store
        .set_label_member(&db.name, &a.id, false)
        .await
        .unwrap());
    assert_eq!(
        store.node_by_id(&a.id).await.unwrap().labels,
        std::slice::from_ref(&web.name)
    );
    let unknown = LabelName::parse("unknown").unwrap();
    assert_eq!(
        store
            .set_label_member(&unknown, &a.id, true)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store
            .set_label_member(&web.name, &NodeId::generate(), true)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );

    store.delete_node(&c.id).await.unwrap();
    assert_eq!(
        ids(store.list_nodes(&in_web(None, 0)).await.unwrap()),
        std::slice::from_ref(&a.id)
    );
    let before_delete = now_unix_ms() - 1;
    store.delete_label(&web.name).await.unwrap();
    assert!(store.node_by_id(&a.id).await.unwrap().labels.is_empty());
    assert!(store
        .changed_keys_since(before_delete)
        .await
        .unwrap()
        .iter()
        .any(|k| k.key == rekeyed.key));
    store.put_label(&web).await.unwrap();
    assert!(
        store.list_nodes(&in_web(None, 0)).await.unwrap().is_empty(),
        "a label put again starts empty"
    );
}

/// Many membership changes at once, with other writes between them, all land.
pub async fn concurrent_memberships_all_land(store: &dyn Store) {
    let label = label("busy", None, None, 10);
    store.put_label(&label).await.unwrap();
    let mut nodes = Vec::new();
    for i in 0..24 {
        nodes.push(enrolled(store, &format!("busy-{i}")).await);
    }
    let joins = nodes
        .iter()
        .map(|n| store.set_label_member(&label.name, &n.id, true));
    let seen: Vec<(NodeId, UnixSeconds)> = nodes.iter().map(|n| (n.id.clone(), 5000)).collect();
    let (joined, seen) = futures_util::future::join(
        futures_util::future::join_all(joins),
        store.record_last_seen(&seen),
    )
    .await;
    seen.unwrap();
    for result in joined {
        assert!(result.unwrap(), "each node joined once");
    }
    let members = store
        .list_nodes(&ListNodes {
            label: Some(label.name.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(members.len(), nodes.len());
}

/// A saved query's SQL is kept byte for byte, up to 64 KiB and with any Unicode.
pub async fn saved_query_sql_is_kept_exactly(store: &dyn Store) {
    let mut sql = "SELECT 'ünïcödé ✓', \"quoted\", '\n' FROM t WHERE x = ';';\n".to_owned();
    while sql.len() < 64 * 1024 - 64 {
        sql.push_str("-- padding to the longest SQL the admin API accepts\n");
    }
    let long = saved("long", &sql, 5);
    store.put_saved_query(&long).await.unwrap();
    assert_eq!(store.saved_query(&long.name).await.unwrap().sql, sql);
}

/// Settings are stored with the environment, replaced whole, and leave its config alone.
pub async fn environment_settings_round_trip(store: &dyn Store) {
    let name = env("settled");
    let created = Environment {
        name: name.clone(),
        config: json!({"options": {"distributed_interval": 10}}),
        created_at: 10,
        config_updated_at: 10,
        config_version: 1,
        settings: EnvironmentSettings::default(),
    };
    store.create_environment(&created).await.unwrap();
    assert_eq!(store.environment(&name).await.unwrap(), created);
    let expiring = EnvironmentSettings {
        node_expiry_days: Some(30),
        enroll_approval: true,
    };
    store
        .put_environment_settings(&name, &expiring)
        .await
        .unwrap();
    let read = store.environment(&name).await.unwrap();
    assert_eq!(read.settings, expiring);
    assert_eq!((read.config, read.config_version), (created.config, 1));
    assert!(store
        .list_environments()
        .await
        .unwrap()
        .iter()
        .any(|e| e.name == name && e.settings == expiring));
    store
        .put_environment_settings(&name, &EnvironmentSettings::default())
        .await
        .unwrap();
    assert_eq!(
        store.environment(&name).await.unwrap().settings,
        EnvironmentSettings::default()
    );
    assert_eq!(
        store
            .put_environment_settings(&env("nowhere"), &expiring)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

/// `put_config` replaces the document and its update time; unknown environments are NotFound.
pub async fn environment_config_is_replaced_whole(store: &dyn Store) {
    let prod = Environment {
        name: env("prod"),
        config: json!({"options": {"a": 1}, "schedule": {}}),
        created_at: 10,
        config_updated_at: 10,
        config_version: 1,
        settings: Default::default(),
    };
    store.create_environment(&prod).await.unwrap();
    let new_config = json!({"options": {"b": "x"}});
    let version = store
        .put_config(&prod.name, &new_config, 20, None)
        .await
        .unwrap();
    assert_eq!(version, 2);
    let stored = store.environment(&prod.name).await.unwrap();
    assert_eq!(stored.config, new_config);
    assert_eq!(stored.config_updated_at, 20);
    assert_eq!(stored.config_version, 2);
    assert_eq!(stored.created_at, 10);
    for expected in [None, Some(1)] {
        let e = store
            .put_config(&env("nope"), &new_config, 20, expected)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
}

/// A replacement that expects a version happens only at that version; a stale one is a
/// Conflict and changes nothing.
pub async fn config_replacement_checks_the_version(store: &dyn Store) {
    let stage = Environment {
        name: env("stage"),
        config: json!({"options": {"a": 1}}),
        created_at: 10,
        config_updated_at: 10,
        config_version: 1,
        settings: Default::default(),
    };
    store.create_environment(&stage).await.unwrap();
    let first = json!({"options": {"a": 2}});
    assert_eq!(
        store
            .put_config(&stage.name, &first, 20, Some(1))
            .await
            .unwrap(),
        2
    );
    let stale = store
        .put_config(&stage.name, &json!({"options": {"a": 3}}), 30, Some(1))
        .await
        .unwrap_err();
    assert_eq!(stale.kind(), ErrorKind::Conflict);
    let stored = store.environment(&stage.name).await.unwrap();
    assert_eq!((stored.config, stored.config_version), (first, 2));
    assert_eq!(stored.config_updated_at, 20);
    assert_eq!(
        store
            .put_config(&stage.name, &json!({}), 40, Some(2))
            .await
            .unwrap(),
        3
    );
}

/// Eight writers racing to replace one config at the version they read, each retrying from
/// a fresh read when it loses: every write lands exactly once, in some order.
pub async fn concurrent_versioned_replacements_lose_nothing(store: &dyn Store) {
    let race = Environment {
        name: env("race"),
        config: json!({"packs": {}}),
        created_at: 10,
        config_updated_at: 10,
        config_version: 1,
        settings: Default::default(),
    };
    store.create_environment(&race).await.unwrap();
    let writers = (0..8).map(|i| {
        let name = race.name.clone();
        async move {
            loop {
                let current = store.environment(&name).await.unwrap();
                let mut config = current.config;
                config["packs"][format!("p{i}")] = json!({"queries": {}});
                match store
                    .put_config(&name, &config, 20, Some(current.config_version))
                    .await
                {
                    Ok(_) => return,
                    Err(e) if e.kind() == ErrorKind::Conflict => tokio::task::yield_now().await,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    });
    futures_util::future::join_all(writers).await;
    let stored = store.environment(&race.name).await.unwrap();
    assert_eq!(stored.config["packs"].as_object().unwrap().len(), 8);
    assert_eq!(stored.config_version, 9);
}

/// A query is handed to each targeted node exactly once, even to concurrent readers.
pub async fn pending_queries_are_delivered_once(store: &dyn Store) {
    let a = enrolled(store, "a").await;
    let b = enrolled(store, "b").await;
    let other = enrolled(store, "c").await;
    let query = NewQuery {
        id: QueryId::generate(),
        sql: "SELECT * FROM osquery_info;".into(),
        targets: QueryTargets {
            node_ids: vec![a.id.clone(), b.id.clone()],
            ..Default::default()
        },
        node_ids: vec![a.id.clone(), b.id.clone()],
        created_by: "tester".into(),
        created_at: 1000,
        expires_at: None,
    };
    store.create_query(&query).await.unwrap();
    assert!(store
        .take_pending_queries(node_ref(&other), 1001)
        .await
        .unwrap()
        .is_empty());
    let (first, second) = tokio::join!(
        store.take_pending_queries(node_ref(&a), 1001),
        store.take_pending_queries(node_ref(&a), 1001)
    );
    let delivered: Vec<PendingQuery> = first.unwrap().into_iter().chain(second.unwrap()).collect();
    assert_eq!(
        delivered,
        vec![PendingQuery {
            id: query.id.clone(),
            sql: query.sql.clone()
        }]
    );
    assert!(store
        .take_pending_queries(node_ref(&a), 1002)
        .await
        .unwrap()
        .is_empty());
    let targets = store.query_targets(&query.id).await.unwrap();
    let state_of = |id: &NodeId| targets.iter().find(|t| &t.node_id == id).unwrap().state;
    assert_eq!(state_of(&a.id), DeliveryState::Delivered);
    assert_eq!(state_of(&b.id), DeliveryState::Pending);
    assert_eq!(targets.len(), 2);
    assert_eq!(store.query(&query.id).await.unwrap().sql, query.sql);
}

/// A query past its expiry is not handed out.
pub async fn expired_queries_are_not_delivered(store: &dyn Store) {
    let a = enrolled(store, "a").await;
    let query = NewQuery {
        id: QueryId::generate(),
        sql: "SELECT 1;".into(),
        targets: QueryTargets {
            node_ids: vec![a.id.clone()],
            ..Default::default()
        },
        node_ids: vec![a.id.clone()],
        created_by: "tester".into(),
        created_at: 1000,
        expires_at: Some(1100),
    };
    store.create_query(&query).await.unwrap();
    assert!(store
        .take_pending_queries(node_ref(&a), 1100)
        .await
        .unwrap()
        .is_empty());
    let targets = store.query_targets(&query.id).await.unwrap();
    assert_eq!(targets[0].state, DeliveryState::Pending);
}

fn result(query: &QueryId, status: i64, rows: serde_json::Value) -> QueryResult {
    QueryResult {
        query_id: query.clone(),
        status,
        rows: rows.as_array().unwrap().clone(),
        message: Some(if status == 0 { "" } else { "no such table" }.into()),
        stats: Some(json!({"wall_time_ms": 3})),
        received_at: 1200,
    }
}

/// A resent answer replaces the earlier one; states follow the status.
pub async fn query_results_are_idempotent(store: &dyn Store) {
    let a = enrolled(store, "a").await;
    let b = enrolled(store, "b").await;
    let query = NewQuery {
        id: QueryId::generate(),
        sql: "SELECT 1;".into(),
        targets: QueryTargets {
            node_ids: vec![a.id.clone(), b.id.clone()],
            ..Default::default()
        },
        node_ids: vec![a.id.clone(), b.id.clone()],
        created_by: "tester".into(),
        created_at: 1000,
        expires_at: None,
    };
    store.create_query(&query).await.unwrap();
    store
        .take_pending_queries(node_ref(&a), 1001)
        .await
        .unwrap();
    let ok = result(&query.id, 0, json!([{"1": "1"}, {"1": "2"}]));
    store.record_result(&a.id, &ok).await.unwrap();
    store.record_result(&a.id, &ok).await.unwrap();
    let failed = result(&query.id, 1, json!([]));
    store.record_result(&b.id, &failed).await.unwrap();
    let results = store.query_results(&query.id, None, 0).await.unwrap();
    assert_eq!(results.len(), 2);
    let of = |id: &NodeId| results.iter().find(|r| &r.node_id == id).unwrap();
    assert_eq!(of(&a.id).result, ok);
    assert_eq!(of(&b.id).result, failed);
    let targets = store.query_targets(&query.id).await.unwrap();
    let state_of = |id: &NodeId| targets.iter().find(|t| &t.node_id == id).unwrap().state;
    assert_eq!(state_of(&a.id), DeliveryState::Succeeded);
    assert_eq!(state_of(&b.id), DeliveryState::Failed);
}

/// Answers from nodes a query does not target, or to unknown queries, are `NotFound`.
pub async fn results_for_untargeted_nodes_are_refused(store: &dyn Store) {
    let a = enrolled(store, "a").await;
    let b = enrolled(store, "b").await;
    let query = NewQuery {
        id: QueryId::generate(),
        sql: "SELECT 1;".into(),
        targets: QueryTargets {
            node_ids: vec![a.id.clone()],
            ..Default::default()
        },
        node_ids: vec![a.id.clone()],
        created_by: "tester".into(),
        created_at: 1000,
        expires_at: None,
    };
    store.create_query(&query).await.unwrap();
    let e = store
        .record_result(&b.id, &result(&query.id, 0, json!([])))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = store
        .record_result(&a.id, &result(&QueryId::generate(), 0, json!([])))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(store
        .query_results(&query.id, None, 0)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.query(&QueryId::generate()).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// Creating a query with an existing id is `AlreadyExists`.
pub async fn duplicate_query_is_refused(store: &dyn Store) {
    let a = enrolled(store, "a").await;
    let query = NewQuery {
        id: QueryId::generate(),
        sql: "SELECT 1;".into(),
        targets: QueryTargets {
            node_ids: vec![a.id.clone()],
            ..Default::default()
        },
        node_ids: vec![a.id.clone()],
        created_by: "tester".into(),
        created_at: 1000,
        expires_at: None,
    };
    store.create_query(&query).await.unwrap();
    let e = store.create_query(&query).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
}

fn new_carve(node: &NodeId, blocks: u64) -> NewCarve {
    NewCarve {
        session_id: CarveSessionId::generate(),
        node_id: node.clone(),
        carve_guid: "guid-1".into(),
        request_id: "req-1".into(),
        block_count: blocks,
        block_size: 10,
        carve_size: blocks * 10 - 3,
        created_at: 1000,
    }
}

/// Each block counts once; exactly one recording completes the carve, even concurrently.
pub async fn carve_blocks_are_counted_once(store: &dyn Store) {
    let a = enrolled(store, "a").await;
    let carve = new_carve(&a.id, 3);
    store.create_carve(&carve).await.unwrap();
    assert_eq!(
        store.create_carve(&carve).await.unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    let first = store
        .record_carve_block(&carve.session_id, 0)
        .await
        .unwrap();
    assert_eq!(
        first,
        BlockRecorded {
            newly_recorded: true,
            blocks_received: 1
        }
    );
    let again = store
        .record_carve_block(&carve.session_id, 0)
        .await
        .unwrap();
    assert_eq!(
        again,
        BlockRecorded {
            newly_recorded: false,
            blocks_received: 1
        }
    );
    store
        .record_carve_block(&carve.session_id, 1)
        .await
        .unwrap();
    let (x, y) = tokio::join!(
        store.record_carve_block(&carve.session_id, 2),
        store.record_carve_block(&carve.session_id, 2)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.blocks_received, 3);
    assert_eq!(y.blocks_received, 3);
    assert!(x.newly_recorded ^ y.newly_recorded);
    let e = store
        .record_carve_block(&CarveSessionId::generate(), 0)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

/// Finishing records status and hash; listing is newest first and filters by node.
pub async fn carve_finish_and_list(store: &dyn Store) {
    let a = enrolled(store, "a").await;
    let b = enrolled(store, "b").await;
    let mut older = new_carve(&a.id, 1);
    older.created_at = 900;
    let newer = new_carve(&a.id, 2);
    let other = new_carve(&b.id, 1);
    for c in [&older, &newer, &other] {
        store.create_carve(c).await.unwrap();
    }
    store
        .finish_carve(&newer.session_id, CarveStatus::Complete, Some("abc"), 1500)
        .await
        .unwrap();
    let got = store.carve(&newer.session_id).await.unwrap();
    assert_eq!(got.carve, newer);
    assert_eq!(got.status, CarveStatus::Complete);
    assert_eq!(got.sha256.as_deref(), Some("abc"));
    assert_eq!(got.finished_at, Some(1500));
    let fresh = store.carve(&older.session_id).await.unwrap();
    assert_eq!(fresh.status, CarveStatus::Receiving);
    assert_eq!(fresh.blocks_received, 0);
    assert_eq!(fresh.sha256, None);
    let of_a = store.list_carves(Some(&a.id)).await.unwrap();
    let ids: Vec<_> = of_a.iter().map(|c| c.carve.session_id.clone()).collect();
    assert_eq!(
        ids,
        vec![newer.session_id.clone(), older.session_id.clone()]
    );
    assert_eq!(store.list_carves(None).await.unwrap().len(), 3);
    let e = store
        .finish_carve(&CarveSessionId::generate(), CarveStatus::Failed, None, 1)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

fn broad_query(targets: QueryTargets, node_ids: Vec<NodeId>, created_at: UnixSeconds) -> NewQuery {
    NewQuery {
        id: QueryId::generate(),
        sql: "SELECT 1;".into(),
        targets,
        node_ids,
        created_by: "tester".into(),
        created_at,
        expires_at: Some(created_at + 3600),
    }
}

/// Live queries are those neither cancelled nor expired, broad or listed, ordered by id.
pub async fn live_queries_are_listed(store: &dyn Store) {
    let a = enrolled(store, "a").await;
    let broad = broad_query(
        QueryTargets {
            all: true,
            ..Default::default()
        },
        vec![],
        1000,
    );
    let listed = broad_query(
        QueryTargets {
            node_ids: vec![a.id.clone()],
            ..Default::default()
        },
        vec![a.id.clone()],
        1000,
    );
    let mut forever = broad_query(QueryTargets::default(), vec![a.id.clone()], 1000);
    forever.targets.node_ids = vec![a.id.clone()];
    forever.expires_at = None;
    let cancelled = broad_query(
        QueryTargets {
            all: true,
            ..Default::default()
        },
        vec![],
        1000,
    );
    for q in [&broad, &listed, &forever, &cancelled] {
        store.create_query(q).await.unwrap();
    }
    store.cancel_query(&cancelled.id, 1001).await.unwrap();
    let mut expected = vec![broad.id.clone(), listed.id.clone(), forever.id.clone()];
    expected.sort();
    let live: Vec<QueryId> = store
        .live_queries(1002)
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.id)
        .collect();
    assert_eq!(live, expected);
    let live = store.live_queries(1000 + 3600).await.unwrap();
    assert_eq!(
        live.len(),
        1,
        "only the query without expiry outlives the hour"
    );
    assert_eq!(live[0].id, forever.id);
    assert_eq!(live[0].targets.node_ids, vec![a.id.clone()]);
}

/// A broad query reaches nodes enrolled after it was made, once each.
pub async fn broad_queries_reach_nodes_enrolled_later(store: &dyn Store) {
    let early = enrolled(store, "early").await;
    let query = broad_query(
        QueryTargets {
            environments: vec![env("default")],
            ..Default::default()
        },
        vec![early.id.clone()],
        1000,
    );
    store.create_query(&query).await.unwrap();
    let late = enrolled(store, "late").await;
    let elsewhere = store
        .enroll_node(new_node("other", "x", "", 1000))
        .await
        .unwrap();
    for node in [&early, &late] {
        let got = store
            .take_pending_queries(node_ref(node), 1001)
            .await
            .unwrap();
        assert_eq!(got.len(), 1, "{}", node.host_identifier);
        assert_eq!(got[0].id, query.id);
        assert!(store
            .take_pending_queries(node_ref(node), 1002)
            .await
            .unwrap()
            .is_empty());
    }
    assert!(store
        .take_pending_queries(node_ref(&elsewhere), 1001)
        .await
        .unwrap()
        .is_empty());
    let targets = store.query_targets(&query.id).await.unwrap();
    assert_eq!(targets.len(), 2);
    assert!(targets.iter().all(|t| t.state == DeliveryState::Delivered));
}

/// Environment and platform filters both apply; listed ids always do.
pub async fn targets_filter_by_environment_and_platform(store: &dyn Store) {
    let linux = enrolled(store, "linux-1").await;
    let mut mac_request = new_node("default", "mac-1", "M", 1000);
    mac_request.platform = "darwin".into();
    mac_request.platform_type = "21".into();
    let mac = store.enroll_node(mac_request).await.unwrap();
    let query = broad_query(
        QueryTargets {
            environments: vec![env("default")],
            platforms: vec!["darwin".into()],
            ..Default::default()
        },
        vec![],
        1000,
    );
    store.create_query(&query).await.unwrap();
    assert!(store
        .take_pending_queries(node_ref(&linux), 1001)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .take_pending_queries(node_ref(&mac), 1001)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A cancelled query is handed to no one more; its answers stay.
pub async fn cancelled_queries_are_not_delivered(store: &dyn Store) {
    let a = enrolled(store, "a").await;
    let b = enrolled(store, "b").await;
    let query = broad_query(
        QueryTargets {
            all: true,
            ..Default::default()
        },
        vec![a.id.clone(), b.id.clone()],
        1000,
    );
    store.create_query(&query).await.unwrap();
    store
        .take_pending_queries(node_ref(&a), 1001)
        .await
        .unwrap();
    store
        .record_result(&a.id, &result(&query.id, 0, json!([{"x": "1"}])))
        .await
        .unwrap();
    store.cancel_query(&query.id, 1002).await.unwrap();
    assert!(store
        .take_pending_queries(node_ref(&b), 1003)
        .await
        .unwrap()
        .is_empty());
    let late = enrolled(store, "late").await;
    assert!(store
        .take_pending_queries(node_ref(&late), 1003)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.query(&query.id).await.unwrap().cancelled_at,
        Some(1002)
    );
    assert_eq!(
        store.query_results(&query.id, None, 0).await.unwrap().len(),
        1
    );
    assert_eq!(
        store
            .cancel_query(&QueryId::generate(), 1)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

/// Queries list newest first, page by page, with their targets and creator.
pub async fn list_queries_pages_newest_first(store: &dyn Store) {
    let mut made = Vec::new();
    for i in 0..5 {
        let q = broad_query(
            QueryTargets {
                all: true,
                ..Default::default()
            },
            vec![],
            1000 + i,
        );
        store.create_query(&q).await.unwrap();
        made.push(q.id);
    }
    let mut seen = Vec::new();
    let mut before: Option<QueryId> = None;
    loop {
        let page = store.list_queries(before.as_ref(), 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        before = Some(page.last().unwrap().id.clone());
        seen.extend(page);
    }
    let ids: Vec<QueryId> = seen.iter().map(|q| q.id.clone()).collect();
    made.reverse();
    assert_eq!(ids, made);
    assert!(seen[0].targets.all);
    assert_eq!(seen[0].created_by, "tester");
}

/// Results page by node id.
pub async fn query_results_page_by_node(store: &dyn Store) {
    let mut nodes = Vec::new();
    for i in 0..5 {
        nodes.push(enrolled(store, &format!("n{i}")).await);
    }
    let ids: Vec<NodeId> = nodes.iter().map(|n| n.id.clone()).collect();
    let query = broad_query(
        QueryTargets {
            node_ids: ids.clone(),
            ..Default::default()
        },
        ids.clone(),
        1000,
    );
    store.create_query(&query).await.unwrap();
    for node in &nodes {
        store
            .record_result(
                &node.id,
                &result(&query.id, 0, json!([{"n": node.id.as_str()}])),
            )
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    let mut after: Option<NodeId> = None;
    loop {
        let page = store
            .query_results(&query.id, after.as_ref(), 2)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = Some(page.last().unwrap().node_id.clone());
        got.extend(page.into_iter().map(|r| r.node_id));
    }
    let mut expected = ids;
    expected.sort();
    assert_eq!(got, expected);
}

/// Node listing filters by platform, text in identifier or hostname, and last seen.
pub async fn list_nodes_filters(store: &dyn Store) {
    let a = store
        .enroll_node(new_node("default", "Web-Alpha", "A", 1000))
        .await
        .unwrap();
    let mut mac = new_node("default", "mac-beta", "B", 2000);
    mac.platform = "darwin".into();
    let b = store.enroll_node(mac).await.unwrap();
    let list = |request: ListNodes| async move {
        store
            .list_nodes(&request)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        list(ListNodes {
            platform: Some("darwin".into()),
            ..Default::default()
        })
        .await,
        vec![b.id.clone()]
    );
    assert_eq!(
        list(ListNodes {
            search: Some("alpha".into()),
            ..Default::default()
        })
        .await,
        vec![a.id.clone()]
    );
    assert_eq!(
        list(ListNodes {
            seen_since: Some(1500),
            ..Default::default()
        })
        .await,
        vec![b.id.clone()]
    );
}

fn user(name: &str, role: Role) -> User {
    User {
        id: format!("id-of-{name}"),
        username: Username::parse(name).unwrap(),
        role,
        password_hash: format!("$argon2id$fake${name}"),
        created_at: 1000,
    }
}

/// Users are created, read, listed, updated and deleted; names are unique.
pub async fn users_round_trip(store: &dyn Store) {
    store.create_user(&user("root", Role::Admin)).await.unwrap();
    let alice = user("alice", Role::Operator);
    store.create_user(&alice).await.unwrap();
    store.create_user(&user("bob", Role::Viewer)).await.unwrap();
    assert_eq!(
        store.create_user(&alice).await.unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(store.user(&alice.username).await.unwrap(), alice);
    let names: Vec<String> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username.to_string())
        .collect();
    assert_eq!(names, ["alice", "bob", "root"]);
    let mut promoted = alice.clone();
    promoted.role = Role::Admin;
    promoted.password_hash = "$argon2id$new".into();
    store.update_user(&promoted).await.unwrap();
    assert_eq!(store.user(&alice.username).await.unwrap(), promoted);
    store.delete_user(&alice.username).await.unwrap();
    assert_eq!(
        store.user(&alice.username).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.update_user(&promoted).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.delete_user(&alice.username).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // A later user of the same name is another user: an update read from the first is not
    // applied to it.
    let later = User {
        id: "another-id".into(),
        ..alice.clone()
    };
    store.create_user(&later).await.unwrap();
    assert_eq!(
        store.update_user(&promoted).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(store.user(&alice.username).await.unwrap(), later);
}

/// The last admin can be neither demoted nor deleted; other changes to them are fine.
pub async fn the_last_admin_stays(store: &dyn Store) {
    let root = user("root", Role::Admin);
    store.create_user(&root).await.unwrap();
    store.create_user(&user("vic", Role::Viewer)).await.unwrap();
    let demoted = User {
        role: Role::Operator,
        ..root.clone()
    };
    let refused = store.update_user(&demoted).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Conflict);
    let refused = store.delete_user(&root.username).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Conflict);
    assert_eq!(store.user(&root.username).await.unwrap(), root);
    let new_password = User {
        password_hash: "$argon2id$other".into(),
        ..root.clone()
    };
    store.update_user(&new_password).await.unwrap();
    // With a second admin, one of them may go.
    store.create_user(&user("ann", Role::Admin)).await.unwrap();
    store.update_user(&demoted).await.unwrap();
    let ann = Username::parse("ann").unwrap();
    assert_eq!(
        store.delete_user(&ann).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
}

/// Two admins demoting (or deleting) each other at once: exactly one succeeds, round after
/// round, and an admin always remains.
pub async fn concurrent_demotions_leave_an_admin(store: &dyn Store) {
    let (a, b) = (user("adm-a", Role::Admin), user("adm-b", Role::Admin));
    store.create_user(&a).await.unwrap();
    store.create_user(&b).await.unwrap();
    let demoted_a = User {
        role: Role::Viewer,
        ..a.clone()
    };
    let demoted_b = User {
        role: Role::Viewer,
        ..b.clone()
    };
    for round in 0..5 {
        let (first, second) =
            tokio::join!(store.update_user(&demoted_a), store.update_user(&demoted_b));
        assert!(
            first.is_ok() != second.is_ok(),
            "round {round}: exactly one demotion succeeds: {first:?} {second:?}"
        );
        for refused in [first, second].into_iter().filter_map(Result::err) {
            assert_eq!(refused.kind(), ErrorKind::Conflict);
        }
        let admins = store
            .list_users()
            .await
            .unwrap()
            .into_iter()
            .filter(|u| u.role == Role::Admin)
            .count();
        assert_eq!(admins, 1, "round {round}");
        store.update_user(&a).await.unwrap();
        store.update_user(&b).await.unwrap();
    }
    let (first, second) = tokio::join!(
        store.delete_user(&a.username),
        store.delete_user(&b.username)
    );
    assert!(first.is_ok() != second.is_ok(), "{first:?} {second:?}");
}

fn token(id: &str, owner: &str, created_at: UnixSeconds) -> ApiToken {
    ApiToken {
        id: id.into(),
        username: Username::parse(owner).unwrap(),
        user_id: format!("id-of-{owner}"),
        kind: TokenKind::Api,
        name: format!("token {id}"),
        token_hash: format!("hash-{id}"),
        created_at,
        expires_at: Some(9999),
    }
}

/// Tokens are found by hash, listed, deleted, and go with their user.
pub async fn tokens_round_trip(store: &dyn Store) {
    store
        .create_user(&user("alice", Role::Operator))
        .await
        .unwrap();
    store.create_user(&user("bob", Role::Viewer)).await.unwrap();
    let t1 = token("t1", "alice", 1);
    let t2 = token("t2", "alice", 2);
    let t3 = token("t3", "bob", 3);
    for t in [&t1, &t2, &t3] {
        store.create_token(t).await.unwrap();
    }
    assert_eq!(
        store.create_token(&t1).await.unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    assert_eq!(store.token_by_hash("hash-t2").await.unwrap(), t2);
    let alices = store
        .list_tokens(Some(&Username::parse("alice").unwrap()))
        .await
        .unwrap();
    assert_eq!(alices, vec![t1.clone(), t2.clone()]);
    assert_eq!(store.list_tokens(None).await.unwrap().len(), 3);
    store.delete_token("t1").await.unwrap();
    assert_eq!(
        store.token_by_hash("hash-t1").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.delete_token("t1").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    store
        .delete_user(&Username::parse("alice").unwrap())
        .await
        .unwrap();
    assert_eq!(
        store.token_by_hash("hash-t2").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(store.token_by_hash("hash-t3").await.unwrap(), t3);
}

/// Nodes are read by ids: those that exist, once each, by id, with their latest last-seen
/// time.
pub async fn nodes_are_read_by_ids(store: &dyn Store) {
    let a = enrolled(store, "by-id-a").await;
    let b = enrolled(store, "by-id-b").await;
    let _c = enrolled(store, "by-id-c").await;
    store
        .record_last_seen(&[(b.id.clone(), 5000)])
        .await
        .unwrap();
    let unknown = NodeId::generate();
    let found = store
        .nodes_by_ids(&[b.id.clone(), unknown, a.id.clone(), b.id.clone()])
        .await
        .unwrap();
    let mut expected = vec![a.id.clone(), b.id.clone()];
    expected.sort();
    assert_eq!(
        found.iter().map(|n| n.id.clone()).collect::<Vec<_>>(),
        expected
    );
    let found_b = found.iter().find(|n| n.id == b.id).unwrap();
    assert_eq!(found_b.last_seen, 5000);
    assert_eq!(found_b.host_identifier, b.host_identifier);
    assert!(store.nodes_by_ids(&[]).await.unwrap().is_empty());
    let too_many: Vec<NodeId> = (0..=MAX_NODES_BY_IDS).map(|_| NodeId::generate()).collect();
    assert_eq!(
        store.nodes_by_ids(&too_many).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

/// Audit entries list newest first, page by page; ids are unique.
pub async fn audit_log_pages_newest_first(store: &dyn Store) {
    let entries: Vec<AuditEntry> = (0..5)
        .map(|i| AuditEntry {
            id: format!("{:015}-{i}", 1000 + i),
            at: 1000 + i,
            actor: "alice".into(),
            action: "environment.create".into(),
            target: format!("env{i}"),
            detail: json!({"i": i}),
        })
        .collect();
    for e in &entries {
        store.append_audit(e).await.unwrap();
    }
    assert_eq!(
        store.append_audit(&entries[0]).await.unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    let mut got = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let page = store
            .list_audit(&AuditFilter::default(), before.as_deref(), 2)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        before = Some(page.last().unwrap().id.clone());
        got.extend(page);
    }
    let mut expected = entries;
    expected.reverse();
    assert_eq!(got, expected);
}

/// Audit listings filter by actor, action prefix, target and time, and page within the
/// filter.
pub async fn audit_log_filters(store: &dyn Store) {
    let entry = |i: i64, actor: &str, action: &str, target: &str| AuditEntry {
        id: format!("{:015}-{i:08x}", (1_000 + i) * 1000 + 7),
        at: 1_000 + i,
        actor: actor.into(),
        action: action.into(),
        target: target.into(),
        detail: serde_json::Value::Null,
    };
    let entries = [
        entry(0, "alice", "environment.create", "prod"),
        entry(1, "bob", "query.create", "q1"),
        entry(2, "alice", "query.cancel", "q1"),
        entry(3, "alice", "saved_query.put", "uptime"),
        entry(4, "bob", "query.create", "q2"),
        entry(5, "alice", "query.create", "q3"),
    ];
    for e in &entries {
        store.append_audit(e).await.unwrap();
    }
    let ids = |found: Vec<AuditEntry>| found.into_iter().map(|e| e.at - 1_000).collect::<Vec<_>>();
    let list = |filter: AuditFilter, before: Option<String>, limit: usize| async move {
        store
            .list_audit(&filter, before.as_deref(), limit)
            .await
            .unwrap()
    };
    let by = |actor: &str| AuditFilter {
        actor: Some(actor.into()),
        ..AuditFilter::default()
    };
    assert_eq!(ids(list(by("bob"), None, 0).await), [4, 1]);
    let queries = AuditFilter {
        action_prefix: Some("query.".into()),
        ..AuditFilter::default()
    };
    assert_eq!(ids(list(queries.clone(), None, 0).await), [5, 4, 2, 1]);
    // Pages within the filter: the cursor is the last entry returned.
    let first = list(queries.clone(), None, 2).await;
    let cursor = first.last().map(|e| e.id.clone());
    assert_eq!(ids(first), [5, 4]);
    assert_eq!(ids(list(queries.clone(), cursor, 2).await), [2, 1]);
    let on_q1_by_alice = AuditFilter {
        actor: Some("alice".into()),
        target: Some("q1".into()),
        ..AuditFilter::default()
    };
    assert_eq!(ids(list(on_q1_by_alice, None, 0).await), [2]);
    let recent = AuditFilter {
        since: Some(1_003),
        ..AuditFilter::default()
    };
    assert_eq!(ids(list(recent.clone(), None, 0).await), [5, 4, 3]);
    let second_page = list(recent.clone(), Some(entries[4].id.clone()), 10).await;
    assert_eq!(ids(second_page), [3]);
    assert!(list(recent, Some(entries[1].id.clone()), 10)
        .await
        .is_empty());
    let nobody = by("carol");
    assert!(list(nobody, None, 0).await.is_empty());
}

/// Secret usage counts every enroll and keeps the latest time.
pub async fn secret_usage_is_counted(store: &dyn Store) {
    store.record_secret_use("s1", 100).await.unwrap();
    store.record_secret_use("s1", 300).await.unwrap();
    store.record_secret_use("s1", 200).await.unwrap();
    store.record_secret_use("s2", 50).await.unwrap();
    let usage = store.secret_usage().await.unwrap();
    assert_eq!(
        usage,
        vec![
            SecretUsage {
                secret_id: "s1".into(),
                use_count: 3,
                last_used_at: 300
            },
            SecretUsage {
                secret_id: "s2".into(),
                use_count: 1,
                last_used_at: 50
            },
        ]
    );
}

/// A listed node carries only the summary of its host details; read by id, all of them.
pub async fn listed_nodes_carry_the_host_details_summary(store: &dyn Store) {
    let mut node = new_node("default", "summary-host", "uuid-s", 1000);
    node.host_details["system_info"]["cpu_brand"] = json!("x".repeat(1000));
    node.host_details["system_info"]["hardware_serial"] = json!("C02SERIAL");
    node.host_details["os_version"] = json!({"name": "Debian"});
    let full = node.host_details.clone();
    let stored = store.enroll_node(node).await.unwrap();
    let listed = store.list_nodes(&ListNodes::default()).await.unwrap();
    let listed = listed.iter().find(|n| n.id == stored.id).unwrap();
    assert_eq!(
        listed.host_details,
        json!({"system_info": {"hostname": "summary-host", "hardware_serial": "C02SERIAL"}, "osquery_info": {"version": "5.23.1"}})
    );
    assert_eq!(
        store.node_by_id(&stored.id).await.unwrap().host_details,
        full
    );
    assert_eq!(
        store.node_by_key(&stored.key).await.unwrap().host_details,
        full
    );
}

/// Host details are replaced whole; the node keeps its key, identity and last-seen time, and
/// details too large for an item round-trip.
pub async fn host_details_are_replaced(store: &dyn Store) {
    let node = enrolled(store, "details-host").await;
    let newer = json!({"osquery_info": {"version": "5.99.0"}, "system_info": {"hostname": "renamed"}, "interface_addresses": [{"address": "10.0.0.5"}]});
    store.update_host_details(&node.id, &newer).await.unwrap();
    let read = store.node_by_id(&node.id).await.unwrap();
    assert_eq!(read.host_details, newer);
    assert_eq!((&read.key, read.last_seen), (&node.key, node.last_seen));
    assert_eq!(read.hostname(), Some("renamed"));
    let by_key = store.node_by_key(&node.key).await.unwrap();
    assert_eq!(by_key.osquery_version(), Some("5.99.0"));
    // Larger than a database item holds inline, then small again.
    let large = json!({"osquery_info": {"version": "6.0.0"}, "padding": "p".repeat(300 * 1024)});
    store.update_host_details(&node.id, &large).await.unwrap();
    assert_eq!(
        store.node_by_id(&node.id).await.unwrap().host_details,
        large
    );
    store.update_host_details(&node.id, &newer).await.unwrap();
    assert_eq!(
        store.node_by_id(&node.id).await.unwrap().host_details,
        newer
    );
    assert_eq!(
        store
            .update_host_details(&NodeId::generate(), &newer)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

/// A node is found by its id, host identifier, hostname, hardware uuid (any case) or serial,
/// exactly; a name two nodes share finds both.
pub async fn nodes_are_found_by_any_name(store: &dyn Store) {
    let mut first = new_node("default", "web-1.example.com", "AAAA-1111", 1000);
    first.host_details["system_info"]["hostname"] = json!("web-1");
    first.host_details["system_info"]["hardware_serial"] = json!("SERIAL-1");
    let first = store.enroll_node(first).await.unwrap();
    let mut second = new_node("default", "web-2.example.com", "BBBB-2222", 1000);
    second.host_details["system_info"]["hostname"] = json!("web-1");
    let second = store.enroll_node(second).await.unwrap();
    let named = |name: &str| {
        let request = ListNodes {
            named: Some(name.to_owned()),
            ..ListNodes::default()
        };
        async move {
            let mut ids: Vec<NodeId> = store
                .list_nodes(&request)
                .await
                .unwrap()
                .into_iter()
                .map(|n| n.id)
                .collect();
            ids.sort();
            ids
        }
    };
    for name in [
        first.id.as_str(),
        "web-1.example.com",
        "AAAA-1111",
        "aaaa-1111",
        "SERIAL-1",
    ] {
        assert_eq!(named(name).await, std::slice::from_ref(&first.id), "{name}");
    }
    let mut both = vec![first.id.clone(), second.id.clone()];
    both.sort();
    assert_eq!(named("web-1").await, both);
    assert!(named("web").await.is_empty(), "exact names only");
    assert!(
        named("serial-1").await.is_empty(),
        "serials keep their case"
    );
}

/// Six concurrent enrolls of one identity leave one node, and exactly one of their keys works.
pub async fn concurrent_enrolls_of_one_host_leave_one_node(store: &dyn Store) {
    let attempts: Vec<NewNode> = (0..6)
        .map(|_| new_node("default", "raced", "U", 1000))
        .collect();
    let enrolled =
        futures_util::future::join_all(attempts.iter().map(|n| store.enroll_node(n.clone()))).await;
    let ids: std::collections::HashSet<NodeId> =
        enrolled.into_iter().map(|r| r.unwrap().id).collect();
    assert_eq!(ids.len(), 1, "one node for one identity");
    let working: Vec<&NewNode> = {
        let mut working = Vec::new();
        for attempt in &attempts {
            if store.node_by_key(&attempt.key).await.is_ok() {
                working.push(attempt);
            }
        }
        working
    };
    assert_eq!(working.len(), 1, "exactly one key works");
    let listed = store.list_nodes(&ListNodes::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
}

/// Every block of a carve sent twice, all at once: each is counted once, and exactly one
/// recording sees the carve complete.
pub async fn concurrent_blocks_complete_a_carve_exactly_once(store: &dyn Store) {
    let session_id = CarveSessionId::generate();
    store
        .create_carve(&NewCarve {
            session_id: session_id.clone(),
            node_id: NodeId::generate(),
            carve_guid: "guid".into(),
            request_id: "request".into(),
            block_count: 8,
            block_size: 10,
            carve_size: 80,
            created_at: 1,
        })
        .await
        .unwrap();
    // Every block twice, all at once.
    let blocks: Vec<u64> = (0..8).chain(0..8).collect();
    let recorded = futures_util::future::join_all(
        blocks
            .iter()
            .map(|b| store.record_carve_block(&session_id, *b)),
    )
    .await;
    let recorded: Vec<BlockRecorded> = recorded.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(recorded.iter().filter(|r| r.newly_recorded).count(), 8);
    assert_eq!(
        recorded
            .iter()
            .filter(|r| r.newly_recorded && r.blocks_received == 8)
            .count(),
        1
    );
    assert_eq!(store.carve(&session_id).await.unwrap().blocks_received, 8);
}

/// Five concurrent reads of one node hand it a broad campaign once, whether the node was
/// enrolled before the campaign or after it.
pub async fn concurrent_reads_deliver_a_campaign_once(store: &dyn Store) {
    let early = store
        .enroll_node(new_node("default", "early", "E", 1000))
        .await
        .unwrap();
    let query = NewQuery {
        id: QueryId::generate(),
        sql: "SELECT 1".into(),
        targets: QueryTargets {
            all: true,
            ..Default::default()
        },
        node_ids: vec![early.id.clone()],
        created_by: "alice".into(),
        created_at: 1000,
        expires_at: None,
    };
    store.create_query(&query).await.unwrap();
    let late = store
        .enroll_node(new_node("default", "late", "L", 1001))
        .await
        .unwrap();
    for node in [&early, &late] {
        let reads = futures_util::future::join_all(
            (0..5).map(|_| store.take_pending_queries(node_ref(node), 1002)),
        )
        .await;
        let handed: usize = reads.into_iter().map(|r| r.unwrap().len()).sum();
        assert_eq!(handed, 1, "{}", node.host_identifier);
    }
    let targets = store.query_targets(&query.id).await.unwrap();
    assert_eq!(targets.len(), 2);
    assert!(targets.iter().all(|t| t.state == DeliveryState::Delivered));
}
