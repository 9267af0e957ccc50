//! The first RPCs of apps, configs, images and devops, called over gRPC as a
//! tenant's member, a stranger and a platform administrator.

use e2e::Platform;
use kernel::caller::{Caller, CallerKey, Membership, Role};
use kernel::grpc::{Outgoing, channel, uri};
use paas_proto::v1 as pb;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

fn as_caller(p: &Platform, service: &str, caller: &Caller) -> InterceptedService<Channel, Outgoing> {
    let key = CallerKey::new(p.settings.caller_key.clone());
    let ch = channel(&uri(p.stack.service(service).unwrap().grpc)).unwrap();
    InterceptedService::new(ch, Outgoing::new(&key, caller))
}

#[tokio::test]
async fn tenant_scoped_services_serve_their_members_and_hide_from_strangers() {
    let p = Platform::start().await;
    // A tenant tenancy knows: apps makes nothing under one it does not.
    let created: serde_json::Value = p
        .admin(reqwest::Method::POST, "/api/v1/tenants")
        .json(&serde_json::json!({"name": "shop"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tenant = uuid::Uuid::parse_str(created["id"].as_str().unwrap()).unwrap();
    let developer = Caller::user(
        "u:dev",
        vec![Membership {
            tenant,
            role: Role::Developer,
        }],
    );
    let operator = Caller::user(
        "u:ops",
        vec![Membership {
            tenant,
            role: Role::Operator,
        }],
    );
    let stranger = Caller::user(
        "u:other",
        vec![Membership {
            tenant: uuid_v7(),
            role: Role::TenantAdmin,
        }],
    );

    // apps: a developer creates a template; the catalog is for platform admins.
    let mut apps = pb::apps_service_client::AppsServiceClient::new(as_caller(&p, "apps", &developer));
    let t = apps
        .create_template(pb::CreateTemplateRequest {
            tenant_id: tenant.to_string(),
            name: "shop".into(),
            description: "web shop".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let catalog = apps
        .create_template(pb::CreateTemplateRequest {
            tenant_id: String::new(),
            name: "mysql".into(),
            description: String::new(),
        })
        .await;
    assert_eq!(catalog.unwrap_err().code(), Code::PermissionDenied);
    let mut admin_apps =
        pb::apps_service_client::AppsServiceClient::new(as_caller(&p, "apps", &Caller::platform_admin("admin")));
    admin_apps
        .create_template(pb::CreateTemplateRequest {
            tenant_id: String::new(),
            name: "mysql".into(),
            description: String::new(),
        })
        .await
        .unwrap();
    let listed = apps
        .list_templates(pb::ListTemplatesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .templates;
    let names: Vec<&str> = listed.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["shop", "mysql"], "its own and the catalog's");
    let mut stranger_apps = pb::apps_service_client::AppsServiceClient::new(as_caller(&p, "apps", &stranger));
    assert_eq!(
        stranger_apps
            .get_template(pb::GetTemplateRequest { id: t.id.clone() })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let seen: Vec<String> = stranger_apps
        .list_templates(pb::ListTemplatesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .templates
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(seen, ["mysql"]);
    apps.delete_template(pb::DeleteTemplateRequest { id: t.id.clone() })
        .await
        .unwrap();
    assert_eq!(
        apps.get_template(pb::GetTemplateRequest { id: t.id })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    // configs: operators write, developers may not.
    let mut configs = pb::configs_service_client::ConfigsServiceClient::new(as_caller(&p, "configs", &operator));
    let request = pb::CreateConfigSetRequest {
        tenant_id: tenant.to_string(),
        application: "shop".into(),
        environment: "qa".into(),
        ..Default::default()
    };
    let set = configs.create_config_set(request.clone()).await.unwrap().into_inner();
    assert_eq!(
        configs.create_config_set(request.clone()).await.unwrap_err().code(),
        Code::AlreadyExists
    );
    let mut dev_configs = pb::configs_service_client::ConfigsServiceClient::new(as_caller(&p, "configs", &developer));
    assert_eq!(
        dev_configs
            .create_config_set(pb::CreateConfigSetRequest {
                environment: "dev".into(),
                ..request
            })
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let mut stranger_configs =
        pb::configs_service_client::ConfigsServiceClient::new(as_caller(&p, "configs", &stranger));
    assert_eq!(
        stranger_configs
            .get_config_set(pb::GetConfigSetRequest { id: set.id })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    // devops: a developer's pipeline with a validated Git remote.
    let mut devops = pb::devops_service_client::DevopsServiceClient::new(as_caller(&p, "devops", &developer));
    let bad = devops
        .create_pipeline(pb::CreatePipelineRequest {
            tenant_id: tenant.to_string(),
            name: "ci".into(),
            repository: "not a repo".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (
            bad.code(),
            kernel::grpc::metadata_str(bad.metadata(), kernel::error::FIELD_METADATA)
        ),
        (Code::InvalidArgument, Some("repository"))
    );
    devops
        .create_pipeline(pb::CreatePipelineRequest {
            tenant_id: tenant.to_string(),
            name: "ci".into(),
            repository: "git@git.example.com:acme/shop.git".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut stranger_devops = pb::devops_service_client::DevopsServiceClient::new(as_caller(&p, "devops", &stranger));
    assert!(
        stranger_devops
            .list_pipelines(pb::ListPipelinesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .pipelines
            .is_empty()
    );
}

#[tokio::test]
async fn registries_are_platform_resources_with_one_master() {
    let p = Platform::start().await;
    let mut admin =
        pb::images_service_client::ImagesServiceClient::new(as_caller(&p, "images", &Caller::platform_admin("admin")));
    admin
        .create_registry(pb::CreateRegistryRequest {
            name: "harbor".into(),
            url: "https://harbor.example.com".into(),
            master: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let second = admin
        .create_registry(pb::CreateRegistryRequest {
            name: "harbor2".into(),
            url: "https://h2.example.com".into(),
            master: true,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(second.code(), Code::AlreadyExists);
    assert!(
        second.message().contains("harbor is already the master"),
        "{}",
        second.message()
    );
    let someone = Caller::user("u:x", vec![]);
    let mut reader = pb::images_service_client::ImagesServiceClient::new(as_caller(&p, "images", &someone));
    assert_eq!(
        reader
            .list_registries(pb::ListRegistriesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .registries
            .len(),
        1
    );
    let denied = reader
        .create_registry(pb::CreateRegistryRequest {
            name: "mine".into(),
            url: "https://m.example.com".into(),
            master: false,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

fn uuid_v7() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}
