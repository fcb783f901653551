//! The `gaia` binary end to end: help, keys against a temp SQLite database, mock + serve + chat.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn gaia() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gaia"));
    // A clean environment: no vendor keys or Gaia settings from the machine leak into the tests.
    for (k, _) in std::env::vars() {
        if k.starts_with("GAIA_") || k.starts_with("OPENAI_") || k.starts_with("ANTHROPIC_") {
            c.env_remove(k);
        }
    }
    c.env("RUST_LOG", "warn");
    c
}

fn run(c: &mut Command) -> (bool, String, String) {
    let o = c.output().unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn help_everywhere() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["keys", "--help"],
        vec!["keys", "create", "--help"],
        vec!["keys", "list", "--help"],
        vec!["keys", "revoke", "--help"],
        vec!["chat", "--help"],
        vec!["mock-llm", "--help"],
        vec!["rbac", "--help"],
        vec!["quotas", "--help"],
        vec!["quotas", "budgets", "add", "--help"],
        vec!["rbac", "team", "--help"],
        vec!["rbac", "grant", "--help"],
    ] {
        let (ok, out, err) = run(gaia().args(&args));
        assert!(ok, "{args:?}: {err}");
        assert!(out.contains("Usage"), "{args:?}: {out}");
    }
}

#[test]
fn keys_lifecycle_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("cli.db").display());
    let (ok, out, err) = run(gaia().env("GAIA_DATABASE_URL", &db).args([
        "keys",
        "create",
        "--email",
        "npc@example.com",
        "--name",
        "game",
    ]));
    assert!(ok, "{err}");
    let key = out.trim();
    assert!(key.starts_with("gaia_") && key.len() == 45, "{out}");
    let (ok, out, _) = run(gaia().env("GAIA_DATABASE_URL", &db).args(["keys", "list", "--email", "npc@example.com"]));
    assert!(ok);
    assert!(out.contains(&key[..12]) && !out.contains(key), "lists the prefix, never the key: {out}");
    let id = out.lines().nth(1).unwrap().split_whitespace().next().unwrap().to_string();
    let (ok, out, err) = run(gaia().env("GAIA_DATABASE_URL", &db).args(["keys", "revoke", &id]));
    assert!(ok, "{err}");
    assert!(out.contains("revoked"));
    let (ok, _, err) = run(gaia().env("GAIA_DATABASE_URL", &db).args(["keys", "revoke", "no-such-id"]));
    assert!(!ok && err.contains("no API key"), "{err}");
    let (ok, out, _) = run(gaia().env("GAIA_DATABASE_URL", &db).arg("migrate"));
    assert!(ok && out.contains("sqlite"));
}

#[test]
fn invalid_config_is_a_clear_error() {
    let (ok, _, err) = run(gaia().env("GAIA_SERVER__BIND", "nowhere").arg("migrate"));
    assert!(!ok);
    assert!(err.contains("server.bind"), "{err}");
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16) {
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listening on {port}");
}

#[test]
fn mock_serve_and_chat_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("e2e.db").display());
    let (mock_port, server_port) = (free_port(), free_port());
    let mut m = gaia()
        .args(["mock-llm", "--bind", &format!("127.0.0.1:{mock_port}"), "--chunks", "3"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let line = BufReader::new(m.stdout.take().unwrap()).lines().next().unwrap().unwrap();
    assert!(line.contains(&format!("127.0.0.1:{mock_port}")), "{line}");
    let _mock = Kill(m);
    let _server = Kill(
        gaia()
            .env("GAIA_DATABASE_URL", &db)
            .env("OPENAI_BASE_URL", format!("http://127.0.0.1:{mock_port}/v1"))
            .env("OPENAI_API_KEY", "sk-mock")
            .args(["serve", "--bind", &format!("127.0.0.1:{server_port}")])
            .spawn()
            .unwrap(),
    );
    wait_for_port(server_port);
    let (ok, key, err) = run(gaia().env("GAIA_DATABASE_URL", &db).args(["keys", "create", "--email", "p@example.com"]));
    assert!(ok, "{err}");
    let (ok, out, err) = run(gaia().env("GAIA_API_KEY", key.trim()).args([
        "chat",
        "Where is the safe house?",
        "--model",
        "mock-gpt",
        "--url",
        &format!("http://127.0.0.1:{server_port}"),
    ]));
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "Mock reply to: Where is the safe house?");
    assert!(err.contains("conversation: "), "{err}");
    // A bad key is a clear error, not a crash.
    let (ok, _, err) = run(gaia().env("GAIA_API_KEY", "gaia_wrong").args([
        "chat",
        "hi",
        "--url",
        &format!("http://127.0.0.1:{server_port}"),
    ]));
    assert!(!ok && err.contains("401"), "{err}");
}

#[test]
fn rbac_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("rbac.db").display());
    let g = |args: &[&str]| run(gaia().env("GAIA_DATABASE_URL", &db).arg("rbac").args(args));
    // Users come from key creation (the CLI's way to make accounts).
    for email in ["ann@example.com", "bob@example.com"] {
        let (ok, _, err) = run(gaia().env("GAIA_DATABASE_URL", &db).args(["keys", "create", "--email", email]));
        assert!(ok, "{err}");
    }
    let (ok, out, err) = g(&["roles"]);
    assert!(ok, "{err}");
    assert!(out.contains("kb_editor (team, built in)") && out.contains("kb:read /kb/{scope}/**"), "{out}");
    assert!(g(&["team", "create", "Red"]).0);
    let (ok, _, err) = g(&["team", "add", "Red", "--email", "ann@example.com", "--role", "kb_editor"]);
    assert!(ok, "{err}");
    let (ok, out, _) = g(&["team", "members", "Red"]);
    assert!(ok && out.contains("kb_editor"), "{out}");
    let (_, out, _) = g(&["--json", "team", "list"]);
    let teams: serde_json::Value = serde_json::from_str(&out).unwrap();
    let tid = teams[0]["id"].as_str().unwrap().to_string();
    let doc = format!("/kb/teams/{tid}/plan.md");
    // Checks print the reason, and exit non-zero when denied.
    let (ok, out, _) = g(&["check", "--email", "ann@example.com", "write", "kb", &doc]);
    assert!(ok && out.starts_with("allowed") && out.contains("member of team Red"), "{out}");
    let (ok, out, _) = g(&["check", "--email", "bob@example.com", "write", "kb", &doc]);
    assert!(!ok && out.starts_with("denied"), "{out}");
    // A grant with an expiry, listed, then revoked; a bad role is a clear error.
    let (ok, out, err) = g(&[
        "--json",
        "grant",
        "--email",
        "bob@example.com",
        "--role",
        "kb_reader",
        "--team",
        "Red",
        "--expires",
        "2999-01-01T00:00:00Z",
    ]);
    assert!(ok, "{err}");
    let grant: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(g(&["check", "--email", "bob@example.com", "read", "kb", &doc]).0);
    let (ok, _, err) = g(&["grant", "--email", "bob@example.com", "--role", "wizard"]);
    assert!(!ok && err.contains("role wizard"), "{err}");
    assert!(g(&["grants", "--email", "bob@example.com"]).1.contains("kb_reader"));
    assert!(g(&["revoke", grant["id"].as_str().unwrap()]).0);
    assert!(!g(&["check", "--email", "bob@example.com", "read", "kb", &doc]).0);
    // Administrators, who-can, the audit log.
    assert!(g(&["admin", "--email", "bob@example.com"]).0);
    let (ok, out, _) =
        g(&["check", "--email", "bob@example.com", "delete", "conversation", "/users/x/conversations/y"]);
    assert!(ok && out.contains("administrator"), "{out}");
    let (_, out, _) = g(&["who-can", "write", "kb", &doc]);
    assert!(out.contains("member of team Red"), "{out}");
    let (ok, out, _) = g(&["audit"]);
    assert!(ok && out.contains("grant.delete") && out.contains("member.add") && out.contains("(cli)"), "{out}");
}

#[test]
fn keys_expire_and_rotate_and_retention_runs() {
    for args in [vec!["keys", "rotate", "--help"], vec!["retention", "--help"], vec!["retention", "run", "--help"]] {
        let (ok, out, err) = run(gaia().args(&args));
        assert!(ok && out.contains("Usage"), "{args:?}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("rot.db").display());
    let gaia_db = || {
        let mut c = gaia();
        c.env("GAIA_DATABASE_URL", &db);
        c
    };
    let (ok, key, err) =
        run(gaia_db().args(["keys", "create", "--email", "npc@example.com", "--expires-in-days", "30"]));
    assert!(ok && err.contains("expiring"), "{err}");
    let key = key.trim().to_string();
    let (ok, _, err) = run(gaia_db().args(["keys", "create", "--email", "npc@example.com", "--expires-in-days", "0"]));
    assert!(!ok, "zero days is refused: {err}");
    let (ok, out, _) = run(gaia_db().args(["keys", "list"]));
    assert!(ok && out.contains("expires"), "{out}");
    let id = out.lines().nth(1).unwrap().split_whitespace().next().unwrap().to_string();

    let (ok, new_key, err) = run(gaia_db().args(["keys", "rotate", &id, "--overlap-secs", "0"]));
    assert!(ok, "{err}");
    let new_key = new_key.trim();
    assert!(new_key.starts_with("gaia_") && new_key != key && err.contains("rotated"), "{new_key} {err}");
    let (ok, _, err) = run(gaia_db().args(["keys", "rotate", &id]));
    assert!(!ok && err.contains("already rotated"), "{err}");
    let (ok, out, _) = run(gaia_db().args(["keys", "list"]));
    assert!(ok && out.lines().count() == 3, "{out}");

    // Retention: off by default (says so), then one pass with days given on the command line.
    let (ok, out, err) = run(gaia_db().args(["retention", "run"]));
    assert!(ok && err.contains("retention is off") && out.contains("0 message(s)"), "{out} {err}");
    let (ok, out, err) = run(gaia_db().args(["retention", "run", "--audit-days", "1", "--json"]));
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["audit_records"], 0, "the rotation's audit record is recent: {out}");
}

#[test]
fn serve_with_unusable_tls_files_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let (ok, _, err) = run(gaia()
        .env("GAIA_DATABASE_URL", format!("sqlite://{}", dir.path().join("tls.db").display()))
        .env("GAIA_SERVER__TLS__CERT_PATH", &missing)
        .env("GAIA_SERVER__TLS__KEY_PATH", dir.path().join("missing.key"))
        .args(["serve", "--bind", "127.0.0.1:0"]));
    assert!(!ok);
    assert!(err.contains("server.tls.cert_path") && err.contains(&missing.display().to_string()), "{err}");
}

#[test]
fn quotas_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("quotas.db").display());
    let g = |args: &[&str]| run(gaia().env("GAIA_DATABASE_URL", &db).arg("quotas").args(args));
    // Rate limits per key.
    let (ok, out, err) = g(&["limits", "set", "key", "k1", "--rpm", "60", "--tpm", "20000"]);
    assert!(ok && out.contains("limits of key k1 set"), "{out}{err}");
    let (ok, out, _) = g(&["limits", "list"]);
    assert!(ok && out.contains("key k1: 60 requests/min, 20000 tokens/min"), "{out}");
    let (ok, _, err) = g(&["limits", "set", "team", "t1", "--rpm", "1"]);
    assert!(!ok && err.contains("users and keys"), "{err}");
    assert!(g(&["limits", "clear", "key", "k1"]).0);
    let (ok, _, err) = g(&["limits", "clear", "key", "k1"]);
    assert!(!ok && err.contains("no limits"), "{err}");
    // Budgets, listed with their spend.
    let (ok, out, err) = g(&["--json", "budgets", "add", "--scope", "user", "--subject", "u1", "--limit-usd", "25"]);
    assert!(ok, "{err}");
    let b: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(b["hard"], true);
    assert_eq!(b["period"], "monthly");
    let (ok, out, _) = g(&["budgets", "list"]);
    assert!(ok && out.contains("user u1: $0.0000 of $25.0000 monthly (hard)"), "{out}");
    let (ok, _, err) = g(&["budgets", "add", "--scope", "user", "--subject", "u1", "--limit-usd=0"]);
    assert!(!ok && err.contains("positive"), "{err}");
    let (ok, _, err) =
        g(&["budgets", "add", "--scope", "user", "--subject", "u1", "--period", "weekly", "--limit-usd", "3"]);
    assert!(!ok && err.contains("weekly"), "{err}");
    assert!(g(&["budgets", "remove", b["id"].as_str().unwrap()]).0);
    // Prices with a date, and the (empty) usage report.
    let (ok, out, err) = g(&[
        "prices",
        "set",
        "openai",
        "gpt-4o-mini",
        "--input",
        "0.15",
        "--output",
        "0.6",
        "--from",
        "2027-01-01T00:00:00Z",
    ]);
    assert!(ok && out.contains("from 2027-01-01T00:00:00+00:00"), "{out}{err}");
    let (ok, out, _) = g(&["prices", "list"]);
    assert!(ok && out.contains("openai/gpt-4o-mini: $0.15 in, $0.6 out"), "{out}");
    let (ok, out, _) = g(&["report", "--group-by", "model", "--csv"]);
    assert!(ok && out.starts_with("model,requests,errors"), "{out}");
    let (ok, _, err) = g(&["report", "--group-by", "planet"]);
    assert!(!ok && err.contains("planet"), "{err}");
}
