//! `orch up` refuses clearly, without starting anything, when its port is taken or when its
//! data dir was written by a newer orch.

mod common;

use common::TestEnv;
use std::process::Command;

fn up(env: &TestEnv, listen: &str) -> std::process::Output {
    Command::new(common::orch_bin())
        .args(["up", "--data-dir"])
        .arg(env.data_dir())
        .args(["--listen", listen, "--nodes", "0", "--runtime", "sim"])
        .output()
        .expect("run orch up")
}

#[test]
fn up_reports_a_taken_port() {
    let env = TestEnv::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let out = up(&env, &addr);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&addr) && err.contains("already in use"),
        "stderr: {err}"
    );
}

#[test]
fn up_refuses_a_newer_data_dir() {
    let env = TestEnv::new();
    std::fs::create_dir_all(env.data_dir()).expect("mkdir");
    std::fs::write(env.data_dir().join("orch-data-format"), "999\n").expect("write");
    let out = up(&env, "127.0.0.1:0");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("format 999") && err.contains("newer"),
        "stderr: {err}"
    );
}
