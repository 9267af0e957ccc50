use kernel::Error;
use kernel::caller::{Caller, Membership, Role};
use tenancy::member::{Grant, Members};

use crate::helpers::{World, admin, member};

fn service() -> Caller {
    Caller::service("gateway")
}

#[tokio::test]
async fn roles_come_from_direct_and_group_bindings_and_follow_the_directory() {
    let w = World::new().await;
    let members = Members::new(kernel::outbox::Outbox::new(w.pool.clone()));
    let a = w.tenant("alpha", &[]).await;
    let b = w.tenant("beta", &[]).await;
    let web = w.project(&b, "web", &[]).await;
    let tid = |t: &tenancy::tenant::Tenant| t.id.to_string();

    members
        .add(
            &admin(),
            Grant::parse(&tid(&a), "", "group", "ldap:cn=alpha-ops", "operator").unwrap(),
        )
        .await
        .unwrap();
    members
        .add(
            &admin(),
            Grant::parse(&tid(&a), "", "user", "ldap:jdoe", "viewer").unwrap(),
        )
        .await
        .unwrap();
    members
        .add(
            &admin(),
            Grant::parse(&tid(&b), &web.id.to_string(), "user", "ldap:jdoe", "operator").unwrap(),
        )
        .await
        .unwrap();

    members
        .sync_user(
            &service(),
            "ldap:jdoe",
            "John Doe",
            "jdoe@acme.example",
            &["ldap:cn=alpha-ops".into()],
        )
        .await
        .unwrap();
    let got = members.memberships(&service(), "ldap:jdoe").await.unwrap();
    let mut want = vec![
        Membership {
            tenant: a.id,
            role: Role::Operator,
        },
        Membership {
            tenant: b.id,
            role: Role::Viewer,
        },
    ];
    want.sort_by_key(|m| m.tenant);
    assert_eq!(
        got, want,
        "the group's operator beats the direct viewer; a project role makes a tenant viewer"
    );

    // Leaving the group in the directory takes the group's role away at the next login.
    members
        .sync_user(&service(), "ldap:jdoe", "John Doe", "jdoe@acme.example", &[])
        .await
        .unwrap();
    let roles: Vec<Role> = members
        .memberships(&service(), "ldap:jdoe")
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.tenant == a.id)
        .map(|m| m.role)
        .collect();
    assert_eq!(roles, vec![Role::Viewer]);
}

#[tokio::test]
async fn only_tenant_admins_grant_and_strangers_see_no_members() {
    let w = World::new().await;
    let members = Members::new(kernel::outbox::Outbox::new(w.pool.clone()));
    let a = w.tenant("alpha", &[]).await;
    let b = w.tenant("beta", &[]).await;
    let other_project = w.project(&b, "web", &[]).await;
    let grant = |who: &str| Grant::parse(&a.id.to_string(), "", "user", who, "developer").unwrap();
    assert!(matches!(
        members.add(&member(a.id, Role::Operator), grant("u1")).await,
        Err(Error::PermissionDenied(_))
    ));
    let binding = members
        .add(&member(a.id, Role::TenantAdmin), grant("u1"))
        .await
        .unwrap();
    assert!(matches!(
        members.add(&member(a.id, Role::TenantAdmin), grant("u1")).await,
        Err(Error::Conflict(_))
    ));
    let foreign = Grant::parse(&a.id.to_string(), &other_project.id.to_string(), "user", "u2", "viewer").unwrap();
    assert_eq!(
        members.add(&admin(), foreign).await.unwrap_err().field(),
        Some("project_id")
    );
    let stranger = member(b.id, Role::TenantAdmin);
    assert!(matches!(
        members.list(&stranger, a.id, page(), None, None).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        members.remove(&stranger, binding.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        members.sync_user(&stranger, "u1", "", "", &[]).await,
        Err(Error::PermissionDenied(_))
    ));
    assert!(matches!(
        members.memberships(&stranger, "u1").await,
        Err(Error::PermissionDenied(_))
    ));
    members
        .remove(&member(a.id, Role::TenantAdmin), binding.id)
        .await
        .unwrap();
    assert!(
        members
            .list(&admin(), a.id, page(), None, None)
            .await
            .unwrap()
            .0
            .is_empty()
    );
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE subject LIKE 'tenancy.member.%'")
        .fetch_one(&w.pool)
        .await
        .unwrap();
    assert_eq!(events, 2);
}

fn page() -> kernel::page::Page {
    kernel::page::Page::parse(0, "").unwrap()
}

#[tokio::test]
async fn members_list_in_pages_and_filter_by_kind() {
    let w = World::new().await;
    let members = Members::new(kernel::outbox::Outbox::new(w.pool.clone()));
    let a = w.tenant("alpha", &[]).await;
    for (kind, who) in [("user", "u1"), ("group", "oidc:corp:g1"), ("user", "u2")] {
        members
            .add(
                &admin(),
                Grant::parse(&a.id.to_string(), "", kind, who, "viewer").unwrap(),
            )
            .await
            .unwrap();
    }
    let (first, next) = members
        .list(&admin(), a.id, kernel::page::Page::parse(2, "").unwrap(), None, None)
        .await
        .unwrap();
    assert_eq!(first.len(), 2);
    let (rest, end) = members
        .list(&admin(), a.id, kernel::page::Page::parse(2, &next).unwrap(), None, None)
        .await
        .unwrap();
    assert_eq!((rest.len(), end.as_str()), (1, ""));
    let (groups, _) = members
        .list(&admin(), a.id, page(), Some(tenancy::member::Kind::Group), None)
        .await
        .unwrap();
    assert_eq!(
        groups.iter().map(|b| b.subject.as_str()).collect::<Vec<_>>(),
        ["oidc:corp:g1"]
    );
}

#[tokio::test]
async fn a_group_grants_its_role_only_to_members_from_its_own_source() {
    let w = World::new().await;
    let members = Members::new(kernel::outbox::Outbox::new(w.pool.clone()));
    let a = w.tenant("alpha", &[]).await;
    let b = w.tenant("beta", &[]).await;
    members
        .add(
            &admin(),
            Grant::parse(&a.id.to_string(), "", "group", "oidc:corp:team-pay-dev", "developer").unwrap(),
        )
        .await
        .unwrap();
    // A binding from before groups named their source, as the migration
    // left it: any provider's group of that name.
    sqlx::query(
        "INSERT INTO role_bindings (id, tenant_id, subject_kind, subject, role, created_by)
         VALUES ($1, $2, 'group', 'oidc:*:old-team', 'viewer', 'test')",
    )
    .bind(kernel::id::new_id())
    .bind(b.id)
    .execute(&w.pool)
    .await
    .unwrap();
    let roles = |subject: &'static str, groups: Vec<String>| {
        let members = members.clone();
        async move {
            members.sync_user(&service(), subject, "", "", &groups).await.unwrap();
            members.memberships(&service(), subject).await.unwrap()
        }
    };
    let partner = roles("oidc:partner:u1", vec!["oidc:partner:team-pay-dev".into()]).await;
    assert_eq!(partner, [], "partner's team-pay-dev is not corp's");
    let corp = roles("oidc:corp:u2", vec!["oidc:corp:team-pay-dev".into()]).await;
    assert_eq!(
        corp,
        [Membership {
            tenant: a.id,
            role: Role::Developer
        }]
    );
    let legacy = roles("oidc:partner:u3", vec!["oidc:partner:old-team".into()]).await;
    assert_eq!(
        legacy,
        [Membership {
            tenant: b.id,
            role: Role::Viewer
        }]
    );
    // An unqualified group from a login matches nothing.
    let unqualified = roles("oidc:corp:u4", vec!["team-pay-dev".into()]).await;
    assert_eq!(unqualified, []);
}
