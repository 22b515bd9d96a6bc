//! The CLI's typed admin client against a real server over TLS: every route, its answer read
//! as the server's own type.

use serde_json::json;

use sgt_bin::admin_types::{
    AuditListParams, CarveListParams, CarveRequest, LabelBody, LoginRequest, MembersChange,
    MembersChanged, NewCampaign, NewEnvironment, NewSecret, NewToken, NewUser, NodeListParams,
    PageParams, SavedQueryBody, TokenListParams, UserUpdate, ROUTES,
};
use sgt_bin::cli::client::{AdminClient, ApiError};
use sgt_core::store::{
    CarveStatus, DeliveryState, EnvironmentSettings, QueryTargets, Role, TokenKind,
};
use sgt_core::types::EnvironmentName;
use sgt_tests::{carve_id, distinct_bytes, Agent, TestServer};

/// The refusal an [`AdminClient`] call ended with: status and code.
fn refusal<
    T: std::fmt::Debug,
    E: std::ops::Deref<Target = dyn std::error::Error + Send + Sync + 'static>,
>(
    result: Result<T, E>,
) -> (u16, String) {
    let error = result.expect_err("refused");
    let api = error.downcast_ref::<ApiError>().expect("an API refusal");
    (api.status.as_u16(), api.code.clone())
}

#[tokio::test]
async fn the_typed_client_reads_every_answer_as_the_servers_types() {
    let server = TestServer::start().await;
    let base = server.url("");
    let password = std::fs::read_to_string(server.data_dir().join("admin_password")).unwrap();
    let anonymous = AdminClient::new(&base, None, Some(server.ca_file())).unwrap();
    assert_eq!(refusal(anonymous.me().await), (401, "unauthorized".into()));
    let session = anonymous
        .login(&LoginRequest {
            username: "admin".into(),
            password: password.trim().into(),
        })
        .await
        .unwrap();
    assert_eq!(session.role, Role::Admin);
    let api = AdminClient::new(&base, Some(session.token), Some(server.ca_file())).unwrap();
    let mut used = Vec::new();

    // Login, users and tokens.
    used.extend(["login", "me"]);
    let me = api.me().await.unwrap();
    assert_eq!((me.username.as_str(), me.role), ("admin", Role::Admin));
    used.extend(["create_user", "list_users", "user", "update_user"]);
    let otto = api
        .create_user(&NewUser {
            username: "otto".into(),
            role: Role::Operator,
            password: "operator-password".into(),
        })
        .await
        .unwrap();
    assert_eq!(otto.role, Role::Operator);
    assert!(api
        .list_users()
        .await
        .unwrap()
        .iter()
        .any(|u| u.username.as_str() == "otto"));
    assert_eq!(api.user("otto").await.unwrap(), otto);
    let update = UserUpdate {
        role: Some(Role::Viewer),
        ..UserUpdate::default()
    };
    assert_eq!(
        api.update_user("otto", &update).await.unwrap().role,
        Role::Viewer
    );
    used.extend(["create_token", "list_tokens", "revoke_token"]);
    let token = api
        .create_token(&NewToken {
            name: "ci".into(),
            username: None,
            expires_in_days: Some(1),
        })
        .await
        .unwrap();
    assert!(token.token.len() >= 64, "{}", token.token.len());
    assert_eq!(token.record.kind, TokenKind::Api);
    let mine = api.list_tokens(&TokenListParams::default()).await.unwrap();
    assert!(mine.iter().any(|t| t.id == token.record.id));
    api.revoke_token(&token.record.id).await.unwrap();
    let everyone = api
        .list_tokens(&TokenListParams { all: true })
        .await
        .unwrap();
    assert!(everyone.iter().all(|t| t.id != token.record.id));

    // Environments, configs, packs and secrets.
    used.extend([
        "create_environment",
        "list_environments",
        "environment",
        "put_environment_settings",
        "config",
        "put_config",
    ]);
    let prod = api
        .create_environment(&NewEnvironment {
            name: "prod".into(),
            config: None,
        })
        .await
        .unwrap();
    assert_eq!(prod.name, EnvironmentName::parse("prod").unwrap());
    assert!(api.list_environments().await.unwrap().contains(&prod));
    assert_eq!(api.environment("prod").await.unwrap(), prod);
    let expiring = EnvironmentSettings {
        node_expiry_days: Some(90),
        ..EnvironmentSettings::default()
    };
    let settled = api
        .put_environment_settings("prod", &expiring)
        .await
        .unwrap();
    assert_eq!(settled.settings, expiring);
    assert_eq!(api.environment("prod").await.unwrap(), settled);
    let config = api.config("prod").await.unwrap();
    let mut changed = config.config.clone();
    changed["schedule"] = json!({"uptime": {"query": "SELECT * FROM uptime;", "interval": 60}});
    let written = api
        .put_config("prod", &changed, Some(config.version))
        .await
        .unwrap();
    assert_eq!(
        (written.config.clone(), written.version),
        (changed.clone(), config.version + 1)
    );
    // Written over a version that is gone: refused, nothing changed.
    assert_eq!(
        refusal(
            api.put_config("prod", &json!({}), Some(config.version))
                .await
        ),
        (409, "conflict".into())
    );
    assert_eq!(api.config("prod").await.unwrap(), written);
    used.extend(["put_pack", "packs", "pack", "delete_pack"]);
    let pack = json!({"queries": {"users": {"query": "SELECT * FROM users;", "interval": 3600}}});
    assert_eq!(
        api.put_pack("prod", "inventory", &pack).await.unwrap(),
        pack
    );
    assert_eq!(api.packs("prod").await.unwrap()["inventory"], pack);
    assert_eq!(api.pack("prod", "inventory").await.unwrap(), pack);
    api.delete_pack("prod", "inventory").await.unwrap();
    assert_eq!(
        refusal(api.pack("prod", "inventory").await),
        (404, "not_found".into())
    );
    used.extend(["create_secret", "list_secrets"]);
    let secret = api
        .create_secret(
            "prod",
            &NewSecret {
                expires_in_days: Some(1),
            },
        )
        .await
        .unwrap();
    assert!(secret.record.expires_at.is_some());
    assert!(api
        .list_secrets("prod")
        .await
        .unwrap()
        .iter()
        .any(|s| s.id == secret.record.id));

    // Nodes.
    used.extend(["list_nodes", "node"]);
    let mut agent = Agent::new(&server, "prod-web-1");
    let (status, body) = agent.enroll_with(&secret.secret).await;
    assert_eq!(status, 200, "{body}");
    let in_prod = NodeListParams {
        environment: Some("prod".into()),
        ..NodeListParams::default()
    };
    let nodes = api.all_nodes(in_prod.clone()).await.unwrap();
    assert_eq!(nodes.len(), 1);
    let node_id = nodes[0].id.clone();
    assert_eq!(nodes[0].host_details, None, "lists leave host details out");
    let first = api
        .list_nodes(&NodeListParams {
            limit: Some(1),
            ..in_prod
        })
        .await
        .unwrap();
    assert_eq!(first.items, nodes);
    let node = api.node(node_id.as_str()).await.unwrap();
    assert_eq!(node.host_identifier.as_str(), "prod-web-1");
    assert!(node.host_details.is_some());

    // Live queries.
    used.extend([
        "create_query",
        "query",
        "query_targets",
        "query_results",
        "list_queries",
        "cancel_query",
    ]);
    let created = api
        .create_query(&NewCampaign {
            sql: "SELECT 1 AS one;".into(),
            saved_query: None,
            targets: QueryTargets {
                environments: vec![prod.name.clone()],
                ..QueryTargets::default()
            },
            expires_in_seconds: None,
        })
        .await
        .unwrap();
    assert_eq!((created.targeted, created.pending), (1, 1));
    let id = created.query.id.to_string();
    let (_, read) = agent.distributed_read().await;
    assert!(read["queries"][&id].is_string(), "{read}");
    agent
        .distributed_write(json!({"queries": {&id: [{"one": "1"}]}, "statuses": {&id: 0}}))
        .await;
    assert_eq!(api.query(&id).await.unwrap().succeeded, 1);
    let targets = api.query_targets(&id).await.unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].state, DeliveryState::Succeeded);
    let results = api
        .query_results(&id, &PageParams::default())
        .await
        .unwrap();
    assert_eq!(results.items[0].rows, [json!({"one": "1"})]);
    assert_eq!(api.all_query_results(&id).await.unwrap(), results.items);
    let listed = api.list_queries(&PageParams::default()).await.unwrap();
    assert_eq!(listed.items[0].id, created.query.id);
    assert_eq!(api.all_queries().await.unwrap().len(), 1);
    let cancelled = api.cancel_query(&id).await.unwrap();
    assert!(cancelled.query.cancelled_at.is_some());

    // Saved queries.
    used.extend([
        "put_saved_query",
        "saved_query",
        "list_saved_queries",
        "delete_saved_query",
    ]);
    let saved = api
        .put_saved_query(
            "one",
            &SavedQueryBody {
                sql: "SELECT 1 AS one;".into(),
                description: "one".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(api.saved_query("one").await.unwrap(), saved);
    assert_eq!(api.list_saved_queries().await.unwrap(), [saved]);
    api.delete_saved_query("one").await.unwrap();
    assert_eq!(
        refusal(api.saved_query("one").await),
        (404, "not_found".into())
    );

    // Labels.
    used.extend([
        "put_label",
        "label",
        "list_labels",
        "change_label_members",
        "delete_label",
    ]);
    let label = api
        .put_label(
            "canary",
            &LabelBody {
                description: "first to get changes".into(),
                ..LabelBody::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(api.label("canary").await.unwrap(), label);
    assert_eq!(api.list_labels().await.unwrap(), [label]);
    let change = MembersChange {
        add: vec![node_id.clone()],
        ..MembersChange::default()
    };
    let changed = api.change_label_members("canary", &change).await.unwrap();
    assert_eq!(
        changed,
        MembersChanged {
            added: 1,
            removed: 0
        }
    );
    api.delete_label("canary").await.unwrap();
    assert_eq!(
        refusal(api.label("canary").await),
        (404, "not_found".into())
    );

    // Carves.
    used.extend(["request_carve", "list_carves", "carve", "carve_archive"]);
    let asked = api
        .request_carve(&CarveRequest {
            node_id: node_id.clone(),
            path: "/etc/hosts".into(),
        })
        .await
        .unwrap();
    assert!(asked.query.sql.contains("/etc/hosts"));
    let archive = distinct_bytes(20_000);
    let session = agent.carve(&archive, 8192).await;
    let carves = api
        .all_carves(CarveListParams {
            node_id: Some(node_id.to_string()),
            ..CarveListParams::default()
        })
        .await
        .unwrap();
    assert_eq!(carves.len(), 1);
    assert_eq!(carves[0].id, carve_id(&session));
    let carve = api.carve(&carves[0].id).await.unwrap();
    assert_eq!(carve.status, CarveStatus::Complete);
    let file = server.data_dir().join("downloaded.tar");
    let written = api.carve_archive(&carve.id, &file).await.unwrap();
    assert_eq!(written, archive.len() as u64);
    assert_eq!(std::fs::read(&file).unwrap(), archive);

    // The audit log and the API's own description.
    used.extend(["audit_log", "openapi"]);
    let audit = api
        .audit_log(&AuditListParams {
            limit: Some(2),
            ..AuditListParams::default()
        })
        .await
        .unwrap();
    // Newest first: the carve request, which is a live query.
    assert_eq!(audit.items[0].action, "query.create");
    assert_eq!(audit.items[0].target, asked.query.id.as_str());
    assert!(audit.next_cursor.is_some());
    let openapi = api.openapi().await.unwrap();
    assert_eq!(openapi["openapi"], "3.0.3");

    // Deletions last.
    used.extend([
        "revoke_secret",
        "delete_node",
        "delete_user",
        "delete_environment",
    ]);
    api.revoke_secret("prod", &secret.record.id).await.unwrap();
    used.extend(["approve_node", "reject_node"]);
    let approved = api.approve_node(node_id.as_str()).await.unwrap();
    assert!(
        !approved.pending,
        "approving an approved node changes nothing"
    );
    assert_eq!(
        refusal(api.reject_node(node_id.as_str()).await),
        (409, "conflict".into())
    );
    api.delete_node(node_id.as_str()).await.unwrap();
    assert_eq!(
        refusal(api.node(node_id.as_str()).await),
        (404, "not_found".into())
    );
    api.delete_user("otto").await.unwrap();
    api.delete_environment("prod").await.unwrap();
    assert_eq!(
        refusal(api.environment("prod").await),
        (404, "not_found".into())
    );

    used.sort_unstable();
    let mut operations: Vec<&str> = ROUTES.iter().map(|r| r.operation).collect();
    operations.sort_unstable();
    assert_eq!(used, operations, "every route is called above");
    server.stop().await;
}
