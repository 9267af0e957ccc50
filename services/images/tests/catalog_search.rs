//! Catalog search against a real, migrated PostgreSQL: names by part, labels
//! by key and by `key=value`, tag counts kept by the triggers of migration
//! `20261210120000_catalog_search` through pushes, relabelling, deletions and
//! lifecycle moves, keyset pages, and tenants kept apart.

use std::collections::BTreeMap;

use images::catalog::{Catalog, Repository, Search};
use images::inspect::ImageMetadata;
use images::lifecycle::State;
use kernel::caller::{Caller, Membership, Role};
use kernel::outbox::Outbox;
use kernel::page::Page;
use kernel::testkit::TestPlatform;
use uuid::Uuid;

struct Fixture {
    _platform: TestPlatform,
    catalog: Catalog,
    pool: sqlx::PgPool,
}

async fn fixture() -> Fixture {
    let platform = TestPlatform::new().await;
    let pool = kernel::db::connect(&platform.settings, images::NAME).await.unwrap();
    kernel::db::migrate(&pool, &images::MIGRATIONS).await.unwrap();
    Fixture {
        _platform: platform,
        catalog: Catalog::new(Outbox::new(pool.clone())),
        pool,
    }
}

fn image(digest: &str, labels: &[(&str, &str)]) -> ImageMetadata {
    ImageMetadata {
        digest: digest.to_string(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..ImageMetadata::default()
    }
}

impl Fixture {
    async fn push(&self, owner: (Uuid, Uuid), repository: &str, tag: &str, meta: &ImageMetadata) {
        let mut tx = self.pool.begin().await.unwrap();
        self.catalog
            .pushed(&mut tx, owner, repository, tag, meta)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    async fn delete(&self, repository: &str, digest: &str) {
        let mut tx = self.pool.begin().await.unwrap();
        self.catalog.deleted(&mut tx, repository, digest).await.unwrap();
        tx.commit().await.unwrap();
    }

    async fn search(&self, caller: &Caller, query: &str, label: &str) -> Vec<Repository> {
        let search = Search {
            tenant: None,
            query: query.to_string(),
            label: label.to_string(),
        };
        let (repos, next) = self
            .catalog
            .repositories(caller, &search, Page::parse(500, "").unwrap())
            .await
            .unwrap();
        assert!(next.is_empty(), "one page holds every match here");
        repos
    }

    async fn names(&self, caller: &Caller, query: &str, label: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .search(caller, query, label)
            .await
            .into_iter()
            .map(|r| r.name)
            .collect();
        names.sort();
        names
    }
}

fn admin() -> Caller {
    Caller::platform_admin("user:admin")
}

#[tokio::test]
async fn labels_are_found_by_key_and_by_key_and_value_while_tags_change() {
    let f = fixture().await;
    let owner = (Uuid::now_v7(), Uuid::now_v7());
    f.push(
        owner,
        "acme/shop/web",
        "1.0",
        &image("sha256:a1", &[("tier", "frontend")]),
    )
    .await;
    f.push(
        owner,
        "acme/shop/api",
        "1.0",
        &image("sha256:b1", &[("tier", "backend")]),
    )
    .await;
    f.push(
        owner,
        "acme/shop/api",
        "1.1",
        &image("sha256:b2", &[("tier", "backend"), ("team", "core")]),
    )
    .await;
    f.push(owner, "acme/shop/db", "1.0", &image("sha256:c1", &[])).await;

    assert_eq!(f.names(&admin(), "", "tier=frontend").await, ["acme/shop/web"]);
    assert_eq!(f.names(&admin(), "", "tier").await, ["acme/shop/api", "acme/shop/web"]);
    assert_eq!(f.names(&admin(), "", "team=core").await, ["acme/shop/api"]);
    assert!(f.names(&admin(), "", "tier=middle").await.is_empty());
    assert_eq!(f.names(&admin(), "web", "tier").await, ["acme/shop/web"]);

    // A tag pushed again with other labels: its old ones go, unless another tag still carries them.
    f.push(owner, "acme/shop/api", "1.1", &image("sha256:b3", &[("tier", "batch")]))
        .await;
    assert!(f.names(&admin(), "", "team").await.is_empty());
    assert_eq!(f.names(&admin(), "", "tier=backend").await, ["acme/shop/api"]);
    assert_eq!(f.names(&admin(), "", "tier=batch").await, ["acme/shop/api"]);

    // A repository's count is of tags not deleted; deletion and lifecycle moves keep it.
    let count = |repos: Vec<Repository>| repos.iter().map(|r| r.tag_count).collect::<Vec<_>>();
    assert_eq!(count(f.search(&admin(), "shop/api", "").await), [2]);
    f.delete("acme/shop/api", "sha256:b1").await;
    assert_eq!(count(f.search(&admin(), "shop/api", "").await), [1]);
    let api = f.search(&admin(), "shop/api", "").await[0].id;
    f.catalog.move_tag(&admin(), api, "1.1", State::Tested).await.unwrap();
    assert_eq!(count(f.search(&admin(), "shop/api", "").await), [1]);
    f.push(owner, "acme/shop/api", "1.0", &image("sha256:b4", &[])).await;
    assert_eq!(count(f.search(&admin(), "shop/api", "").await), [2]);

    // What the triggers keep equals what the tags say.
    let drift: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM repositories r WHERE r.tag_count <>
           (SELECT count(*) FROM tags t WHERE t.repository_id = r.id AND t.state <> 'deleted'
             AND NOT is_signature_tag(t.name))",
    )
    .fetch_one(&f.pool)
    .await
    .unwrap();
    assert_eq!(drift, 0);
}

#[tokio::test]
async fn a_name_part_is_matched_as_typed_and_like_wildcards_match_only_themselves() {
    let f = fixture().await;
    let owner = (Uuid::now_v7(), Uuid::now_v7());
    for name in ["acme/shop/web_1", "acme/shop/webx1", "acme/shop/api", "acme/shop/100%"] {
        f.push(owner, name, "1.0", &image("sha256:d", &[])).await;
    }
    assert_eq!(
        f.names(&admin(), "web", "").await,
        ["acme/shop/web_1", "acme/shop/webx1"]
    );
    assert_eq!(f.names(&admin(), "web_", "").await, ["acme/shop/web_1"]);
    assert_eq!(f.names(&admin(), "0%", "").await, ["acme/shop/100%"]);
    assert!(f.names(&admin(), "WEB", "").await.is_empty(), "name parts match case");
}

#[tokio::test]
async fn a_tenant_member_finds_only_its_tenants_repositories() {
    let f = fixture().await;
    let (mine, theirs) = ((Uuid::now_v7(), Uuid::now_v7()), (Uuid::now_v7(), Uuid::now_v7()));
    f.push(
        mine,
        "acme/shop/web",
        "1.0",
        &image("sha256:e1", &[("tier", "frontend")]),
    )
    .await;
    f.push(
        theirs,
        "globex/shop/web",
        "1.0",
        &image("sha256:e2", &[("tier", "frontend")]),
    )
    .await;
    let member = Caller::user(
        "user:jdoe",
        vec![Membership {
            tenant: mine.0,
            role: Role::Viewer,
        }],
    );
    assert_eq!(f.names(&member, "", "tier=frontend").await, ["acme/shop/web"]);
    assert_eq!(f.names(&member, "shop/web", "").await, ["acme/shop/web"]);
    assert_eq!(f.names(&admin(), "shop/web", "").await.len(), 2);
    let other_tenant = Search {
        tenant: Some(theirs.0),
        ..Search::default()
    };
    assert!(
        f.catalog
            .repositories(&member, &other_tenant, Page::parse(10, "").unwrap())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn pages_of_a_label_search_follow_one_another_without_gaps_or_repeats() {
    let f = fixture().await;
    let owner = (Uuid::now_v7(), Uuid::now_v7());
    for i in 0..7 {
        let team = if i % 2 == 0 { "even" } else { "odd" };
        f.push(
            owner,
            &format!("acme/shop/svc-{i}"),
            "1.0",
            &image("sha256:f", &[("team", team)]),
        )
        .await;
    }
    for label in ["team=even", "team"] {
        let search = Search {
            label: label.to_string(),
            ..Search::default()
        };
        let (mut seen, mut cursor) = (Vec::new(), String::new());
        loop {
            let (repos, next) = f
                .catalog
                .repositories(&admin(), &search, Page::parse(2, &cursor).unwrap())
                .await
                .unwrap();
            assert!(repos.len() <= 2);
            seen.extend(repos.into_iter().map(|r| r.name));
            if next.is_empty() {
                break;
            }
            cursor = next;
        }
        let mut sorted = seen.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), seen.len(), "{label}: no repeats");
        assert_eq!(seen.len(), if label == "team" { 7 } else { 4 }, "{label}: {seen:?}");
    }
}

#[tokio::test]
async fn cosign_signature_tags_are_neither_listed_nor_counted_as_tags() {
    let f = fixture().await;
    let owner = (Uuid::now_v7(), Uuid::now_v7());
    let signed = format!("sha256:{}", "a".repeat(64));
    f.push(owner, "acme/shop/web", "1.0", &image(&signed, &[])).await;
    let signature = images::cosign::signature_tag(&signed).unwrap();
    f.push(owner, "acme/shop/web", &signature, &image("sha256:sig", &[]))
        .await;
    // Only the exact cosign form is a signature: a look-alike is an ordinary tag.
    f.push(owner, "acme/shop/web", "sha256-short.sig", &image("sha256:b", &[]))
        .await;

    let repo = &f.search(&admin(), "shop/web", "").await[0];
    assert_eq!(repo.tag_count, 2, "1.0 and the look-alike");
    let (tags, _) = f
        .catalog
        .tags(&admin(), repo.id, Page::parse(50, "").unwrap())
        .await
        .unwrap();
    let mut names: Vec<String> = tags.into_iter().map(|t| t.name).collect();
    names.sort();
    assert_eq!(names, ["1.0", "sha256-short.sig"]);
    // The signature is in the catalog still (retention and signature checks read it).
    assert!(f.catalog.state_of("acme/shop/web", &signature).await.unwrap().is_some());
    // Deleting the signature's manifest changes no count of tags.
    f.delete("acme/shop/web", "sha256:sig").await;
    assert_eq!(f.search(&admin(), "shop/web", "").await[0].tag_count, 2);
}
