//! The image catalog as apps reaches it: production admission and digest
//! pinning at every release ([`Images::admit`]). Images owns the catalog and
//! the rules; apps sends each container's image, ports and whether the
//! template sets its command, and renders what comes back (`repo:tag@sha256:...`).

use kernel::caller::{Caller, CallerKey};
use kernel::grpc::Outgoing;
use kernel::{Error, Result};
use paas_proto::v1 as pb;
use paas_proto::v1::images_service_client::ImagesServiceClient;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::spec::{Application, Protocol};

/// Reaches images as the apps service.
#[derive(Clone)]
pub struct Images {
    channel: Channel,
    key: CallerKey,
}

impl Images {
    /// Images at `channel`, calls signed with `key`.
    pub fn new(channel: Channel, key: CallerKey) -> Self {
        Self { channel, key }
    }

    /// Checks `application`'s images for a release of `tenant` into
    /// `environment` and replaces each with the reference to run (pinned to
    /// its digest when the catalog has it).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the image's field and the admission
    /// rule it breaks; [`Error::Unavailable`] when images does not answer.
    pub async fn admit(&self, tenant: Uuid, environment: &str, application: &mut Application) -> Result<()> {
        let mut uses = Vec::new();
        for (s, service) in application.services.iter().enumerate() {
            for (c, container) in service.containers.iter().enumerate() {
                uses.push(pb::ImageUse {
                    field: format!("services[{s}].containers[{c}].image"),
                    image: container.image.clone(),
                    ports: container
                        .ports
                        .iter()
                        .map(|p| {
                            let protocol = match p.protocol {
                                Protocol::TCP => "tcp",
                                Protocol::UDP => "udp",
                            };
                            format!("{}/{protocol}", p.container_port)
                        })
                        .collect(),
                    has_command: !container.command.is_empty(),
                });
            }
        }
        if uses.is_empty() {
            return Ok(());
        }
        let mut client = ImagesServiceClient::with_interceptor(
            self.channel.clone(),
            Outgoing::new(&self.key, &Caller::service(crate::NAME)),
        );
        let admitted = client
            .admit_images(pb::AdmitImagesRequest {
                tenant_id: tenant.to_string(),
                environment: environment.to_string(),
                images: uses,
            })
            .await
            .map_err(|s| match s.code() {
                tonic::Code::InvalidArgument => {
                    let problem = kernel::error::Problem::from_status(&s);
                    let field = problem.field.unwrap_or_else(|| "services".to_string());
                    // The status message repeats the field first; keep the reason.
                    let reason = s
                        .message()
                        .strip_prefix(&format!("{field}: "))
                        .unwrap_or(s.message())
                        .to_string();
                    Error::invalid(field, reason)
                }
                _ => Error::Unavailable(format!("images did not answer: {}", s.message())),
            })?
            .into_inner()
            .images;
        let mut admitted = admitted.into_iter();
        for service in &mut application.services {
            for container in &mut service.containers {
                if let Some(a) = admitted.next() {
                    container.image = a.image;
                }
            }
        }
        Ok(())
    }
}
