use e2e::Platform;
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[tokio::test]
async fn the_simulated_member_clusters_of_paas_up_are_registered_and_answer() {
    let p = Platform::start().await;
    let key = kernel::caller::CallerKey::new(p.settings.caller_key.clone());
    let federation = p.stack.service("federation").unwrap();
    let clusters = paas::member_clusters::start(&key, federation).await.unwrap();
    // A second start (paas up run again) replaces the registrations.
    let again = paas::member_clusters::start(&key, federation).await.unwrap();

    let listed: Value = p.admin(Method::GET, "/api/v1/clusters").send().await.unwrap().json().await.unwrap();
    let items = listed["items"].as_array().unwrap();
    let names: Vec<&str> = items.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["dc1-prod", "dc2-dr"]);
    for (item, cluster) in items.iter().zip(&again) {
        assert_eq!(item["api_endpoint"].as_str().unwrap().trim_end_matches('/'), cluster.url().trim_end_matches('/'));
        let ready = p.http.get(format!("{}/readyz", cluster.url().trim_end_matches('/'))).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
    }
    assert_eq!(items[1]["environment"], "dr");
    drop(clusters);
}
