//! External services through the gateway against a kubesim cluster: a
//! service outside the clusters registered by addresses (a Service without
//! a selector and its Endpoints) or by DNS name (an ExternalName Service),
//! written into the tenant's partition, changed in place, refused with the
//! failing field named, invisible to another tenant, and removed from the
//! cluster when deleted.

use std::time::Duration;

use kernel::testkit::eventually;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::applications::{World, world_with};

const NS: &str = "/api/v1/namespaces/acme-web";

fn placement() -> Value {
    json!({"explicit": [{"cluster": "dc1-prod"}]})
}

impl World {
    /// The cluster's object at `path` once `check` holds.
    async fn kube_until(&self, path: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
        eventually(Duration::from_secs(30), what, || async {
            let o = self.kube(path).await?;
            check(&o).then_some(o)
        })
        .await
    }

    async fn kube_gone(&self, path: &str) {
        eventually(Duration::from_secs(30), &format!("{path} removed"), || async {
            self.kube(path).await.is_none().then_some(())
        })
        .await;
    }

    async fn as_token(&self, secret: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut r = self
            .p
            .http
            .request(method, format!("{}{path}", self.p.url))
            .bearer_auth(secret);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn token(&self, tenant: &str, role: &str) -> String {
        let (_, t) = self
            .send(
                Method::POST,
                "/api/v1/tokens",
                Some(json!({"name": format!("{role} robot"), "tenant_id": tenant, "role": role})),
            )
            .await;
        t["secret"].as_str().unwrap_or_else(|| panic!("{t}")).to_string()
    }
}

#[tokio::test]
async fn an_external_service_is_written_into_the_partition_changed_in_place_and_removed() {
    let w = world_with("4", &[]).await;
    let collection = format!("/api/v1/tenants/{}/external-services", w.tenant);

    // By addresses: a Service without a selector and its Endpoints.
    let body = json!({"name": "ledger", "description": "the mainframe ledger", "addresses": ["10.20.0.5", "10.20.0.6"],
                      "ports": [{"name": "sql", "port": 5432}, {"name": "admin", "port": 9000, "protocol": "udp"}], "placement": placement()});
    let (status, registered) = w.send(Method::POST, &collection, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let id = registered["id"].as_str().unwrap().to_string();
    assert_eq!(
        (registered["name"].as_str(), registered["ports"][1]["protocol"].as_str()),
        (Some("ledger"), Some("UDP")),
        "{registered}"
    );
    let service = w
        .kube_until(&format!("{NS}/services/ledger"), "the ledger Service", |_| true)
        .await;
    assert_eq!(
        service["spec"].get("selector"),
        None,
        "no selector: no controller writes its Endpoints"
    );
    assert_eq!(service["spec"]["type"], "ClusterIP");
    assert!(
        service["spec"]["clusterIP"].as_str().is_some_and(|ip| !ip.is_empty()),
        "a stable in-cluster address: {service}"
    );
    assert_eq!(
        service["spec"]["ports"],
        json!([{"name": "sql", "port": 5432, "protocol": "TCP", "targetPort": 5432}, {"name": "admin", "port": 9000, "protocol": "UDP", "targetPort": 9000}])
    );
    assert_eq!(service["metadata"]["labels"]["paas.io/external-service"], "ledger");
    let endpoints = w
        .kube_until(&format!("{NS}/endpoints/ledger"), "the ledger Endpoints", |_| true)
        .await;
    assert_eq!(
        endpoints["subsets"],
        json!([{"addresses": [{"ip": "10.20.0.5"}, {"ip": "10.20.0.6"}], "ports": [{"name": "sql", "port": 5432, "protocol": "TCP"}, {"name": "admin", "port": 9000, "protocol": "UDP"}]}])
    );
    let read = eventually(Duration::from_secs(30), "the ledger Healthy", || async {
        let (_, s) = w
            .send(Method::GET, &format!("/api/v1/external-services/{id}"), None)
            .await;
        (s["health"] == "Healthy").then_some(s)
    })
    .await;
    assert_eq!(read["clusters"][0]["namespace"], "acme-web", "{read}");
    let (_, listed) = w.send(Method::GET, &collection, None).await;
    assert_eq!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["ledger"]
    );

    // To a DNS name: the same Service becomes an ExternalName alias; the Endpoints go.
    let first_uid = service["metadata"]["uid"].clone();
    let (status, updated) = w
        .send(Method::PUT, &format!("/api/v1/external-services/{id}"), Some(json!({"dns_name": "Ledger.Mainframe.example.com.", "ports": [{"name": "sql", "port": 5432}], "placement": placement()})))
        .await;
    assert_eq!(
        (status, updated["dns_name"].as_str()),
        (StatusCode::OK, Some("ledger.mainframe.example.com")),
        "{updated}"
    );
    let alias = w
        .kube_until(&format!("{NS}/services/ledger"), "the ExternalName", |s| {
            s["spec"]["type"] == "ExternalName"
        })
        .await;
    assert_eq!(alias["spec"]["externalName"], "ledger.mainframe.example.com");
    assert_eq!(
        (alias["spec"].get("clusterIP"), alias["metadata"]["uid"].clone()),
        (None, first_uid),
        "changed in place, without a cluster IP: {alias}"
    );
    w.kube_gone(&format!("{NS}/endpoints/ledger")).await;

    // Back to addresses, another one.
    let (status, _) = w
        .send(
            Method::PUT,
            &format!("/api/v1/external-services/{id}"),
            Some(json!({"addresses": ["2001:db8::7"], "ports": [{"port": 5432}], "placement": placement()})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let endpoints = w
        .kube_until(&format!("{NS}/endpoints/ledger"), "the new Endpoints", |_| true)
        .await;
    assert_eq!(endpoints["subsets"][0]["addresses"], json!([{"ip": "2001:db8::7"}]));
    let service = w
        .kube_until(&format!("{NS}/services/ledger"), "a ClusterIP Service again", |s| {
            s["spec"]["type"] == "ClusterIP"
        })
        .await;
    assert_eq!(service["spec"].get("externalName"), None, "{service}");

    // Deleted: gone from the cluster and from the API.
    assert_eq!(
        w.send(Method::DELETE, &format!("/api/v1/external-services/{id}"), None)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    w.kube_gone(&format!("{NS}/services/ledger")).await;
    w.kube_gone(&format!("{NS}/endpoints/ledger")).await;
    assert_eq!(
        w.send(Method::GET, &format!("/api/v1/external-services/{id}"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn bad_external_services_are_refused_naming_the_field_and_other_tenants_see_none() {
    let w = world_with("4", &[]).await;
    let collection = format!("/api/v1/tenants/{}/external-services", w.tenant);
    let with = |extra: Value| {
        let mut body = json!({"name": "crm", "dns_name": "crm.saas.example.com", "placement": placement()});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body.as_object_mut().unwrap().retain(|_, v| !v.is_null());
        body
    };
    for (body, field) in [
        (with(json!({"name": "1crm"})), "name"),
        (with(json!({"name": "CRM"})), "name"),
        (with(json!({"dns_name": null})), "dns_name"),
        (with(json!({"dns_name": "crm_api.example.com"})), "dns_name"),
        (with(json!({"dns_name": "10.1.2.3"})), "dns_name"),
        (with(json!({"addresses": ["10.1.2.3"]})), "addresses"),
        (
            with(json!({"dns_name": null, "addresses": ["10.1.2.3", "127.0.0.1"], "ports": [{"port": 443}]})),
            "addresses[1]",
        ),
        (
            with(json!({"dns_name": null, "addresses": ["169.254.169.254"], "ports": [{"port": 443}]})),
            "addresses[0]",
        ),
        (
            with(json!({"dns_name": null, "addresses": ["crm.example.com"], "ports": [{"port": 443}]})),
            "addresses[0]",
        ),
        (with(json!({"dns_name": null, "addresses": ["10.1.2.3"]})), "ports"),
        (with(json!({"ports": [{"port": 70000}]})), "ports[0].port"),
        (
            with(json!({"ports": [{"port": 443, "protocol": "HTTP"}]})),
            "ports[0].protocol",
        ),
        (with(json!({"ports": [{"port": 443}, {"port": 80}]})), "ports[0].name"),
        (with(json!({"placement": {"somewhere": true}})), "placement"),
    ] {
        let (status, problem) = w.send(Method::POST, &collection, Some(body.clone())).await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{body} -> {problem}"
        );
    }
    let (_, listed) = w.send(Method::GET, &collection, None).await;
    assert_eq!(listed["items"], json!([]), "nothing refused was stored");
    assert!(
        w.kube(&format!("{NS}/services/crm")).await.is_none(),
        "nothing refused reached the cluster"
    );

    let (status, crm) = w.send(Method::POST, &collection, Some(with(json!({})))).await;
    assert_eq!(status, StatusCode::CREATED, "{crm}");
    let id = crm["id"].as_str().unwrap().to_string();
    assert_eq!(
        w.send(Method::POST, &collection, Some(with(json!({})))).await.0,
        StatusCode::CONFLICT,
        "the name is taken"
    );
    let (status, problem) = w
        .send(
            Method::PUT,
            &format!("/api/v1/external-services/{id}"),
            Some(json!({"dns_name": "crm.example.com", "ports": [{"port": 0}], "placement": placement()})),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ports[0].port")),
        "{problem}"
    );

    // Viewers read; writes need a developer.
    let viewer = w.token(&w.tenant, "viewer").await;
    assert_eq!(
        w.as_token(&viewer, Method::GET, &format!("/api/v1/external-services/{id}"), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        w.as_token(&viewer, Method::GET, &collection, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        w.as_token(
            &viewer,
            Method::DELETE,
            &format!("/api/v1/external-services/{id}"),
            None
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    let developer = w.token(&w.tenant, "developer").await;
    let (status, changed) = w
        .as_token(
            &developer,
            Method::PUT,
            &format!("/api/v1/external-services/{id}"),
            Some(json!({"dns_name": "crm.eu.saas.example.com", "placement": placement()})),
        )
        .await;
    assert_eq!(
        (status, changed["dns_name"].as_str()),
        (StatusCode::OK, Some("crm.eu.saas.example.com")),
        "{changed}"
    );

    // Another tenant's developer sees nothing and changes nothing.
    let (_, other) = w
        .send(Method::POST, "/api/v1/tenants", Some(json!({"name": "globex"})))
        .await;
    let stranger = w.token(other["id"].as_str().unwrap(), "developer").await;
    assert_eq!(
        w.as_token(&stranger, Method::GET, &format!("/api/v1/external-services/{id}"), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.as_token(&stranger, Method::GET, &collection, None).await.0,
        StatusCode::NOT_FOUND
    );
    let put = json!({"dns_name": "evil.example.com", "placement": placement()});
    assert_eq!(
        w.as_token(
            &stranger,
            Method::PUT,
            &format!("/api/v1/external-services/{id}"),
            Some(put)
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        w.as_token(
            &stranger,
            Method::DELETE,
            &format!("/api/v1/external-services/{id}"),
            None
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = w
        .as_token(
            &stranger,
            Method::POST,
            &collection,
            Some(with(json!({"name": "crm2"}))),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no registering in another tenant (whose existence is not revealed)"
    );
    let (_, own) = w
        .as_token(
            &stranger,
            Method::GET,
            &format!("/api/v1/tenants/{}/external-services", other["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(own["items"], json!([]));
    let alias = w
        .kube_until(&format!("{NS}/services/crm"), "the crm alias", |s| {
            s["spec"]["externalName"] == "crm.eu.saas.example.com"
        })
        .await;
    assert_eq!(alias["spec"]["type"], "ExternalName");

    // Applications and external services share the tenant's namespaces: neither takes the other's name.
    assert_eq!(
        w.send(Method::POST, &collection, Some(with(json!({"name": "billing-api"}))))
            .await
            .0,
        StatusCode::CREATED
    );
    let (_, template) = w
        .send(
            Method::POST,
            "/api/v1/templates",
            Some(json!({"tenant_id": w.tenant, "name": "api"})),
        )
        .await;
    let spec = json!({"services": [{"name": "api", "containers": [{"name": "api", "image": "registry.example/api:1", "resources": {"cpu_request": "100m"}, "ports": [{"name": "http", "container_port": 8080}]}]}]});
    let version = w.version(template["id"].as_str().unwrap(), "1.0.0", spec).await;
    let deploy = |name: &str| json!({"name": name, "environment": "test", "template_version_id": version, "placement": placement()});
    let (status, problem) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(deploy("billing")),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "application billing's Service billing-api is an external service's name: {problem}"
    );
    let (status, app) = w
        .send(
            Method::POST,
            &format!("/api/v1/tenants/{}/applications", w.tenant),
            Some(deploy("shop")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let (status, problem) = w
        .send(Method::POST, &collection, Some(with(json!({"name": "shop-api"}))))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "application shop holds shop-api: {problem}"
    );
}
