//! [`AdminClient`]: the admin API as Rust methods, one per route of
//! [`admin_types::ROUTES`](crate::admin_types::ROUTES), sending and reading the server's own
//! types. The only place in the CLI that knows a URL.

use std::path::Path;

use anyhow::{anyhow, Context};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::admin_types::routes::{self, Route};
use crate::admin_types::{
    AuditListParams, Caller, CarveListParams, CarveRequest, CarveView, EnvironmentView, ErrorBody,
    LabelBody, LoginOutcome, LoginRequest, MembersChange, MembersChanged, NewCampaign,
    NewEnvironment, NewSecret, NewSecretOutcome, NewToken, NewTokenOutcome, NewUser,
    NodeListParams, NodeView, Page, PageParams, PageRequest, QueryView, ResultView, SavedQueryBody,
    SecretView, TokenListParams, TokenView, UserUpdate, UserView, VersionedConfig, MAX_PAGE_LIMIT,
};
use sgt_core::store::{
    AuditEntry, DistributedQuery, EnvironmentSettings, Label, QueryTarget, SavedQuery,
};

/// Talks to one sgt server's admin API with one bearer token.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// A refusal from the server: its status, code and message.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error body's code (`not_found`, `conflict`, …), or `http` when there was none.
    pub code: String,
    /// The error body's message, or the status when there is none.
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (HTTP {})", self.message, self.status.as_u16())
    }
}

impl std::error::Error for ApiError {}

/// What a route's parameters, query and body are, for one call.
struct Call<'a> {
    route: &'a Route,
    params: &'a [&'a str],
}

impl AdminClient {
    /// A client for the server at `url`, trusting `ca_cert` (PEM) and nothing else when
    /// given, else the public web roots.
    ///
    /// # Errors
    /// When the CA file cannot be read or parsed.
    pub fn new(url: &str, token: Option<String>, ca_cert: Option<&Path>) -> anyhow::Result<Self> {
        let pem = ca_cert
            .map(|ca| {
                std::fs::read(ca)
                    .with_context(|| format!("cannot read CA certificate {}", ca.display()))
            })
            .transpose()?;
        Self::with_ca_pem(url, token, pem.as_deref())
    }

    /// [`AdminClient::new`] with the CA certificate's PEM text itself.
    ///
    /// # Errors
    /// When the PEM cannot be parsed.
    pub fn with_ca_pem(
        url: &str,
        token: Option<String>,
        ca_pem: Option<&[u8]>,
    ) -> anyhow::Result<Self> {
        let mut builder =
            reqwest::Client::builder().user_agent(concat!("sgt-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = ca_pem {
            builder = builder
                .add_root_certificate(
                    reqwest::Certificate::from_pem(pem).context("invalid CA certificate PEM")?,
                )
                .tls_built_in_root_certs(false);
        }
        Ok(AdminClient {
            base: url.trim_end_matches('/').to_owned(),
            token,
            http: builder.build()?,
        })
    }

    fn request(&self, call: Call<'_>) -> RequestBuilder {
        let method = Method::from_bytes(call.route.method.to_ascii_uppercase().as_bytes())
            .unwrap_or(Method::GET);
        let url = format!("{}{}", self.base, call.route.path_with(call.params));
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request`; the successful response, or the server's refusal as an [`ApiError`].
    async fn send(&self, request: RequestBuilder) -> anyhow::Result<reqwest::Response> {
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = response.bytes().await.unwrap_or_default();
        Err(api_error(status, &body))
    }

    /// Sends `request` and reads its JSON answer as `T`.
    async fn read<T: DeserializeOwned>(&self, request: RequestBuilder) -> anyhow::Result<T> {
        let bytes = self.send(request).await?.bytes().await?;
        serde_json::from_slice(&bytes).context("the server's answer is not what the API promises")
    }

    async fn get<T: DeserializeOwned>(&self, route: &Route, params: &[&str]) -> anyhow::Result<T> {
        self.read(self.request(Call { route, params })).await
    }

    async fn get_with<T: DeserializeOwned, Q: Serialize>(
        &self,
        route: &Route,
        params: &[&str],
        query: &Q,
    ) -> anyhow::Result<T> {
        self.read(self.request(Call { route, params }).query(query))
            .await
    }

    async fn send_json<T: DeserializeOwned, B: Serialize>(
        &self,
        route: &Route,
        params: &[&str],
        body: &B,
    ) -> anyhow::Result<T> {
        self.read(self.request(Call { route, params }).json(body))
            .await
    }

    /// Sends a request the server answers with no content (204).
    async fn no_content(&self, route: &Route, params: &[&str]) -> anyhow::Result<()> {
        self.send(self.request(Call { route, params })).await?;
        Ok(())
    }

    /// Every item of a list, following `next_cursor` a page of the largest size at a time.
    async fn every_page<T, Q>(
        &self,
        route: &Route,
        params: &[&str],
        mut query: Q,
    ) -> anyhow::Result<Vec<T>>
    where
        T: DeserializeOwned,
        Q: Serialize + PageRequest,
    {
        let mut items = Vec::new();
        let mut cursor = None;
        loop {
            query.ask_for(cursor, MAX_PAGE_LIMIT);
            let page: Page<T> = self.get_with(route, params, &query).await?;
            items.extend(page.items);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(items),
            }
        }
    }

    // Login, users and tokens.

    /// `POST /login`: a session token for a user name and password.
    ///
    /// # Errors
    /// `unauthorized` for a wrong name or password, `rate_limited`, or the transport's.
    pub async fn login(&self, request: &LoginRequest) -> anyhow::Result<LoginOutcome> {
        self.send_json(&routes::LOGIN, &[], request).await
    }

    /// `GET /me`: who the token belongs to.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn me(&self) -> anyhow::Result<Caller> {
        self.get(&routes::ME, &[]).await
    }

    /// `GET /users`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn list_users(&self) -> anyhow::Result<Vec<UserView>> {
        self.get(&routes::LIST_USERS, &[]).await
    }

    /// `POST /users`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn create_user(&self, user: &NewUser) -> anyhow::Result<UserView> {
        self.send_json(&routes::CREATE_USER, &[], user).await
    }

    /// `GET /users/{username}`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn user(&self, username: &str) -> anyhow::Result<UserView> {
        self.get(&routes::USER, &[username]).await
    }

    /// `PATCH /users/{username}`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn update_user(
        &self,
        username: &str,
        update: &UserUpdate,
    ) -> anyhow::Result<UserView> {
        self.send_json(&routes::UPDATE_USER, &[username], update)
            .await
    }

    /// `DELETE /users/{username}`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn delete_user(&self, username: &str) -> anyhow::Result<()> {
        self.no_content(&routes::DELETE_USER, &[username]).await
    }

    /// `GET /tokens`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn list_tokens(&self, params: &TokenListParams) -> anyhow::Result<Vec<TokenView>> {
        self.get_with(&routes::LIST_TOKENS, &[], params).await
    }

    /// `POST /tokens`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn create_token(&self, token: &NewToken) -> anyhow::Result<NewTokenOutcome> {
        self.send_json(&routes::CREATE_TOKEN, &[], token).await
    }

    /// `DELETE /tokens/{id}`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn revoke_token(&self, id: &str) -> anyhow::Result<()> {
        self.no_content(&routes::REVOKE_TOKEN, &[id]).await
    }

    // Environments, configs, packs and secrets.

    /// `GET /environments`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn list_environments(&self) -> anyhow::Result<Vec<EnvironmentView>> {
        self.get(&routes::LIST_ENVIRONMENTS, &[]).await
    }

    /// `POST /environments`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn create_environment(
        &self,
        environment: &NewEnvironment,
    ) -> anyhow::Result<EnvironmentView> {
        self.send_json(&routes::CREATE_ENVIRONMENT, &[], environment)
            .await
    }

    /// `GET /environments/{environment}`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn environment(&self, name: &str) -> anyhow::Result<EnvironmentView> {
        self.get(&routes::ENVIRONMENT, &[name]).await
    }

    /// `DELETE /environments/{environment}`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn delete_environment(&self, name: &str) -> anyhow::Result<()> {
        self.no_content(&routes::DELETE_ENVIRONMENT, &[name]).await
    }

    /// `PUT /environments/{environment}/settings`: replaces them; returns the environment.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn put_environment_settings(
        &self,
        name: &str,
        settings: &EnvironmentSettings,
    ) -> anyhow::Result<EnvironmentView> {
        self.send_json(&routes::PUT_ENVIRONMENT_SETTINGS, &[name], settings)
            .await
    }

    /// `GET /environments/{environment}/config`: the document and its version.
    ///
    /// # Errors
    /// The server's refusal or the transport's, or an answer without a version.
    pub async fn config(&self, name: &str) -> anyhow::Result<VersionedConfig> {
        let request = self.request(Call {
            route: &routes::CONFIG,
            params: &[name],
        });
        self.versioned(request).await
    }

    /// `PUT /environments/{environment}/config`: replaces the document; with `if_version`,
    /// only if it is still at that version (else a `conflict` [`ApiError`]).
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn put_config(
        &self,
        name: &str,
        config: &Value,
        if_version: Option<u64>,
    ) -> anyhow::Result<VersionedConfig> {
        let mut request = self
            .request(Call {
                route: &routes::PUT_CONFIG,
                params: &[name],
            })
            .json(config);
        if let Some(version) = if_version {
            request = request.header(reqwest::header::IF_MATCH, VersionedConfig::etag(version));
        }
        self.versioned(request).await
    }

    /// A config answer: the body, and the version its `ETag` names.
    async fn versioned(&self, request: RequestBuilder) -> anyhow::Result<VersionedConfig> {
        let response = self.send(request).await?;
        let version = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .and_then(VersionedConfig::version_of)
            .context("the server's config answer has no version (ETag)")?;
        let config = serde_json::from_slice(&response.bytes().await?)
            .context("the server's config answer is not JSON")?;
        Ok(VersionedConfig { config, version })
    }

    /// `GET /environments/{environment}/packs`: every pack by name.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn packs(&self, environment: &str) -> anyhow::Result<Map<String, Value>> {
        self.get(&routes::PACKS, &[environment]).await
    }

    /// `GET /environments/{environment}/packs/{pack}`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn pack(&self, environment: &str, pack: &str) -> anyhow::Result<Value> {
        self.get(&routes::PACK, &[environment, pack]).await
    }

    /// `PUT /environments/{environment}/packs/{pack}`: adds or replaces a pack; returns it.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn put_pack(
        &self,
        environment: &str,
        pack: &str,
        body: &Value,
    ) -> anyhow::Result<Value> {
        self.send_json(&routes::PUT_PACK, &[environment, pack], body)
            .await
    }

    /// `DELETE /environments/{environment}/packs/{pack}`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn delete_pack(&self, environment: &str, pack: &str) -> anyhow::Result<()> {
        self.no_content(&routes::DELETE_PACK, &[environment, pack])
            .await
    }

    /// `GET /environments/{environment}/secrets`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn list_secrets(&self, environment: &str) -> anyhow::Result<Vec<SecretView>> {
        self.get(&routes::LIST_SECRETS, &[environment]).await
    }

    /// `POST /environments/{environment}/secrets`: the new secret, its value shown once.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn create_secret(
        &self,
        environment: &str,
        secret: &NewSecret,
    ) -> anyhow::Result<NewSecretOutcome> {
        self.send_json(&routes::CREATE_SECRET, &[environment], secret)
            .await
    }

    /// `DELETE /environments/{environment}/secrets/{id}`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn revoke_secret(&self, environment: &str, id: &str) -> anyhow::Result<()> {
        self.no_content(&routes::REVOKE_SECRET, &[environment, id])
            .await
    }

    // Nodes.

    /// `GET /nodes`: one page.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn list_nodes(&self, params: &NodeListParams) -> anyhow::Result<Page<NodeView>> {
        self.get_with(&routes::LIST_NODES, &[], params).await
    }

    /// Every node `filter` matches, every page of [`AdminClient::list_nodes`].
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn all_nodes(&self, filter: NodeListParams) -> anyhow::Result<Vec<NodeView>> {
        self.every_page(&routes::LIST_NODES, &[], filter).await
    }

    /// `GET /nodes/{id}`, with its host details.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn node(&self, id: &str) -> anyhow::Result<NodeView> {
        self.get(&routes::NODE, &[id]).await
    }

    /// `DELETE /nodes/{id}`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn delete_node(&self, id: &str) -> anyhow::Result<()> {
        self.no_content(&routes::DELETE_NODE, &[id]).await
    }

    /// `POST /nodes/{id}/approve`: returns the node, approved.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn approve_node(&self, id: &str) -> anyhow::Result<NodeView> {
        self.read(self.request(Call {
            route: &routes::APPROVE_NODE,
            params: &[id],
        }))
        .await
    }

    /// `POST /nodes/{id}/reject`: deletes a node awaiting approval.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn reject_node(&self, id: &str) -> anyhow::Result<()> {
        self.no_content(&routes::REJECT_NODE, &[id]).await
    }

    // Live queries.

    /// `GET /queries`: one page, newest first, without counts.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn list_queries(&self, page: &PageParams) -> anyhow::Result<Page<DistributedQuery>> {
        self.get_with(&routes::LIST_QUERIES, &[], page).await
    }

    /// Every live query, every page of [`AdminClient::list_queries`].
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn all_queries(&self) -> anyhow::Result<Vec<DistributedQuery>> {
        self.every_page(&routes::LIST_QUERIES, &[], PageParams::default())
            .await
    }

    /// `POST /queries`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn create_query(&self, campaign: &NewCampaign) -> anyhow::Result<QueryView> {
        self.send_json(&routes::CREATE_QUERY, &[], campaign).await
    }

    /// `GET /queries/{id}`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn query(&self, id: &str) -> anyhow::Result<QueryView> {
        self.get(&routes::QUERY, &[id]).await
    }

    /// `GET /queries/{id}/targets`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn query_targets(&self, id: &str) -> anyhow::Result<Vec<QueryTarget>> {
        self.get(&routes::QUERY_TARGETS, &[id]).await
    }

    /// `GET /queries/{id}/results`: one page.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn query_results(
        &self,
        id: &str,
        page: &PageParams,
    ) -> anyhow::Result<Page<ResultView>> {
        self.get_with(&routes::QUERY_RESULTS, &[id], page).await
    }

    /// Every result of a live query, every page of [`AdminClient::query_results`].
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn all_query_results(&self, id: &str) -> anyhow::Result<Vec<ResultView>> {
        self.every_page(&routes::QUERY_RESULTS, &[id], PageParams::default())
            .await
    }

    /// `POST /queries/{id}/cancel`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn cancel_query(&self, id: &str) -> anyhow::Result<QueryView> {
        self.read(self.request(Call {
            route: &routes::CANCEL_QUERY,
            params: &[id],
        }))
        .await
    }

    // Saved queries.

    /// `GET /saved-queries`: every saved query, by name.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn list_saved_queries(&self) -> anyhow::Result<Vec<SavedQuery>> {
        self.get(&routes::LIST_SAVED_QUERIES, &[]).await
    }

    /// `GET /saved-queries/{name}`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn saved_query(&self, name: &str) -> anyhow::Result<SavedQuery> {
        self.get(&routes::SAVED_QUERY, &[name]).await
    }

    /// `PUT /saved-queries/{name}`: saves or replaces it; returns it as stored.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn put_saved_query(
        &self,
        name: &str,
        body: &SavedQueryBody,
    ) -> anyhow::Result<SavedQuery> {
        self.send_json(&routes::PUT_SAVED_QUERY, &[name], body)
            .await
    }

    /// `DELETE /saved-queries/{name}`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn delete_saved_query(&self, name: &str) -> anyhow::Result<()> {
        self.no_content(&routes::DELETE_SAVED_QUERY, &[name]).await
    }

    // Labels.

    /// `GET /labels`: every label, by name.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn list_labels(&self) -> anyhow::Result<Vec<Label>> {
        self.get(&routes::LIST_LABELS, &[]).await
    }

    /// `GET /labels/{name}`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn label(&self, name: &str) -> anyhow::Result<Label> {
        self.get(&routes::LABEL, &[name]).await
    }

    /// `PUT /labels/{name}`: creates or replaces it; returns it as stored.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn put_label(&self, name: &str, body: &LabelBody) -> anyhow::Result<Label> {
        self.send_json(&routes::PUT_LABEL, &[name], body).await
    }

    /// `DELETE /labels/{name}`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn delete_label(&self, name: &str) -> anyhow::Result<()> {
        self.no_content(&routes::DELETE_LABEL, &[name]).await
    }

    /// `POST /labels/{name}/members`: adds and removes members of a manual label.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn change_label_members(
        &self,
        name: &str,
        change: &MembersChange,
    ) -> anyhow::Result<MembersChanged> {
        self.send_json(&routes::CHANGE_LABEL_MEMBERS, &[name], change)
            .await
    }

    // Carves.

    /// `GET /carves`: one page, newest first.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn list_carves(&self, params: &CarveListParams) -> anyhow::Result<Page<CarveView>> {
        self.get_with(&routes::LIST_CARVES, &[], params).await
    }

    /// Every carve `filter` matches, every page of [`AdminClient::list_carves`].
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn all_carves(&self, filter: CarveListParams) -> anyhow::Result<Vec<CarveView>> {
        self.every_page(&routes::LIST_CARVES, &[], filter).await
    }

    /// `POST /carves`: the live query that asks the node for the files.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn request_carve(&self, request: &CarveRequest) -> anyhow::Result<QueryView> {
        self.send_json(&routes::REQUEST_CARVE, &[], request).await
    }

    /// `GET /carves/{id}`.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn carve(&self, id: &str) -> anyhow::Result<CarveView> {
        self.get(&routes::CARVE, &[id]).await
    }

    /// `GET /carves/{id}/archive`, streamed into the file `out`; returns the bytes written.
    ///
    /// # Errors
    /// The server's refusal or the transport's, or when the file cannot be written.
    pub async fn carve_archive(&self, id: &str, out: &Path) -> anyhow::Result<u64> {
        use futures_util::StreamExt;
        use std::io::Write;
        let response = self
            .send(self.request(Call {
                route: &routes::CARVE_ARCHIVE,
                params: &[id],
            }))
            .await?;
        let mut file = std::fs::File::create(out)
            .with_context(|| format!("cannot create {}", out.display()))?;
        let mut written = 0u64;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            file.write_all(&chunk)?;
            written += chunk.len() as u64;
        }
        file.sync_all()?;
        Ok(written)
    }

    // The rest.

    /// `GET /audit`: one page, newest first.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn audit_log(&self, params: &AuditListParams) -> anyhow::Result<Page<AuditEntry>> {
        self.get_with(&routes::AUDIT_LOG, &[], params).await
    }

    /// `GET /openapi.json`: the API's OpenAPI document.
    ///
    /// # Errors
    /// The server's refusal or the transport's.
    pub async fn openapi(&self) -> anyhow::Result<Value> {
        self.get(&routes::OPENAPI, &[]).await
    }
}

/// The server's refusal as an [`ApiError`], from its status and error body.
fn api_error(status: StatusCode, body: &[u8]) -> anyhow::Error {
    let (code, message) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(body) => (body.error.code, body.error.message),
        Err(_) => (
            "http".to_owned(),
            format!("the server answered HTTP {status}"),
        ),
    };
    anyhow!(ApiError {
        status,
        code,
        message
    })
}

#[cfg(test)]
mod tests {
    use crate::admin_types::ROUTES;

    /// Each route has a client method named after its operation, which calls it through
    /// its constant: the client covers the whole API. (`tests/tests/layout.rs` checks that
    /// no URL is written by hand.)
    #[test]
    fn every_route_has_its_client_method() {
        let source = include_str!("client.rs");
        let source = &source[..source.find("#[cfg(test)]").unwrap_or(source.len())];
        for route in ROUTES {
            let method = format!("pub async fn {}(", route.operation);
            let constant = format!("routes::{},", route.operation.to_ascii_uppercase());
            let start = source
                .find(&method)
                .unwrap_or_else(|| panic!("no client method {}", route.operation));
            let body = &source[start..];
            let end = body[1..]
                .find("pub async fn ")
                .map_or(body.len(), |e| e + 1);
            assert!(
                body[..end].contains(&constant),
                "{} does not call {constant}",
                route.operation
            );
        }
    }
}
