//! The `paas` binary as a user runs it.

use std::process::Command;

fn paas() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_paas"));
    c.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

#[test]
fn a_malformed_setting_stops_the_process_with_one_line_naming_it() {
    let out = paas()
        .arg("migrate")
        .env("PAAS_CALLER_KEY", "k".repeat(32))
        .env("PAAS_DATABASE_URL", "mysql://db")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        "paas: setting PAAS_DATABASE_URL: expected a URL such as postgres://user@127.0.0.1:5432/paas, got \"mysql://db\"\n"
    );
}

#[test]
fn a_missing_caller_key_is_named_for_a_single_service() {
    let out = paas().args(["serve", "tenancy"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("PAAS_CALLER_KEY"), "{stderr}");
}

#[test]
fn a_settings_file_is_read_and_the_environment_wins() {
    let dir = std::env::temp_dir().join(format!("paas-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("paas.env");
    std::fs::write(
        &file,
        "PAAS_CALLER_KEY=kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\nPAAS_NATS_URL=http://wrong\n",
    )
    .unwrap();
    let out = paas().arg("migrate").env("PAAS_CONFIG_FILE", &file).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("paas: setting PAAS_NATS_URL: expected a URL such as nats://"),
        "{stderr}"
    );
    let out = paas()
        .arg("migrate")
        .env("PAAS_CONFIG_FILE", &file)
        .env("PAAS_NATS_URL", "nats://127.0.0.1:1")
        .env("PAAS_DB_POOL_SIZE", "many")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        stderr,
        "paas: setting PAAS_DB_POOL_SIZE: expected a whole number, got \"many\"\n"
    );
}

#[test]
fn kubesim_runs_standalone_and_prints_clusters_that_answer() {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut child = paas()
        .args(["kubesim", "--clusters", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .trim_end_matches('/')
        .to_string();
    let addr = url.trim_start_matches("http://").to_string();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "GET /version HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("gitVersion"), "{answer}");
}
