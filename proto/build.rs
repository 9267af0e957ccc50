//! Compiles `paas/v1/*.proto` with the protoc shipped in `protoc-bin-vendored`,
//! so a build needs nothing from the system's packages.

const FILES: &[&str] = &[
    "common",
    "tenancy",
    "federation",
    "apps",
    "configs",
    "images",
    "devops",
    "events",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    let include = protoc_bin_vendored::include_path()?;
    let files: Vec<std::path::PathBuf> = FILES.iter().map(|f| format!("paas/v1/{f}.proto").into()).collect();
    tonic_prost_build::configure()
        .protoc_arg("--experimental_allow_proto3_optional")
        .file_descriptor_set_path(std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("paas_descriptor.bin"))
        .compile_with_config(config, &files, &[std::path::PathBuf::from("."), include])?;
    Ok(())
}
