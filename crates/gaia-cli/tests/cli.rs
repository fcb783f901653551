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
        vec!["world", "--help"],
        vec!["world", "command", "--help"],
        vec!["assets", "--help"],
        vec!["assets", "prices", "cost", "--help"],
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

/// `gaia serve` on `server_port` with the database `db`, its OpenAI provider the mock on `mock_port`,
/// and `env` besides; listening when this returns.
fn serve_on_mock(db: &str, mock_port: u16, server_port: u16, env: &[(&str, &str)]) -> Kill {
    let server = Kill(
        gaia()
            .env("GAIA_DATABASE_URL", db)
            .env("OPENAI_BASE_URL", format!("http://127.0.0.1:{mock_port}/v1"))
            .env("OPENAI_API_KEY", "sk-mock")
            .envs(env.iter().copied())
            .args(["serve", "--bind", &format!("127.0.0.1:{server_port}")])
            .spawn()
            .unwrap(),
    );
    wait_for_port(server_port);
    server
}

/// Sends SIGTERM to `server` and waits (30 s at most) for it to exit.
fn terminate(server: &mut Kill) -> std::process::ExitStatus {
    assert!(Command::new("kill").args(["-TERM", &server.0.id().to_string()]).status().unwrap().success());
    for _ in 0..600 {
        if let Some(s) = server.0.try_wait().unwrap() {
            return s;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the server did not stop within 30 s of SIGTERM");
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
    let mut server = serve_on_mock(&db, mock_port, server_port, &[]);
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
    // The container's health check: ready through the configured address (`server.bind`), live, and
    // a clear failure where nothing listens.
    let (ok, out, err) = run(gaia().env("GAIA_BIND", format!("0.0.0.0:{server_port}")).arg("health"));
    assert!(ok && out.trim() == "ready", "{out} {err}");
    let (ok, out, _) =
        run(gaia().args(["health", "--live", "--url", &format!("http://127.0.0.1:{server_port}/health/live")]));
    assert!(ok && out.trim() == "live");
    let (ok, _, err) = run(gaia().args(["health", "--url", &format!("http://127.0.0.1:{}/health/ready", free_port())]));
    assert!(!ok && err.contains("no answer"), "{err}");
    // SIGTERM: the server stops by itself, successfully.
    let status = terminate(&mut server);
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigterm_stops_a_server_still_waiting_for_its_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("unmigrated.db").display());
    let port = free_port();
    let mut server = Kill(
        gaia()
            .env("GAIA_DATABASE_URL", &db)
            .env("GAIA_SERVER__MIGRATE_ON_START", "false")
            // The line this test waits for is an `info` one.
            .env("RUST_LOG", "info")
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // It waits for `gaia migrate`, not listening.
    let mut err = BufReader::new(server.0.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("waiting for the database migrations") {
        line.clear();
        assert!(err.read_line(&mut line).unwrap() > 0, "the server ended without waiting");
    }
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
    assert!(terminate(&mut server).success(), "a signal stops it before it starts");
}

#[test]
fn sigterm_cuts_streams_longer_than_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("grace.db").display());
    let (mock_port, server_port) = (free_port(), free_port());
    // An answer of about 600 characters in 600 pieces 100 ms apart: a minute, far past the grace.
    let _mock = Kill(
        gaia()
            .args([
                "mock-llm",
                "--bind",
                &format!("127.0.0.1:{mock_port}"),
                "--chunks",
                "600",
                "--chunk-delay-ms",
                "100",
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(mock_port);
    let mut server = serve_on_mock(&db, mock_port, server_port, &[("GAIA_SERVER__SHUTDOWN_GRACE_SECS", "1")]);
    let (ok, key, err) = run(gaia().env("GAIA_DATABASE_URL", &db).args(["keys", "create", "--email", "g@example.com"]));
    assert!(ok, "{err}");
    let story = "tell me everything ".repeat(30);
    let mut chat = Kill(
        gaia()
            .env("GAIA_API_KEY", key.trim())
            .args(["chat", &story, "--model", "mock-gpt", "--url", &format!("http://127.0.0.1:{server_port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The answer has started.
    let mut out = chat.0.stdout.take().unwrap();
    let mut first = [0u8; 4];
    std::io::Read::read_exact(&mut out, &mut first).unwrap();
    assert!(terminate(&mut server).success(), "the server stops once the grace period is over");
    // The stream was cut: the client got an end before the whole answer.
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut out, &mut rest);
    let got = format!("{}{rest}", String::from_utf8_lossy(&first));
    assert!(got.len() < story.len(), "{} characters arrived", got.len());
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
    assert!(!ok && err.contains("not teams"), "{err}");
    // One player of user u1, and each player of key k1.
    assert!(g(&["limits", "set", "end_user", "u1:player-7", "--rpm", "5"]).0);
    assert!(g(&["limits", "set", "key_end_users", "k1", "--rpm", "20"]).0);
    let (ok, _, err) = g(&["limits", "set", "end_user", "player-7", "--rpm", "5"]);
    assert!(!ok && err.contains("<user id>:<end user id>"), "{err}");
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
    let id = b["id"].as_str().unwrap();
    let (ok, out, err) = g(&["--json", "budgets", "set", id, "--limit-usd", "7.5", "--soft"]);
    assert!(ok, "{err}");
    let changed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((changed["limit_usd"].as_f64(), changed["hard"].as_bool()), (Some(7.5), Some(false)));
    let (ok, _, err) = g(&["budgets", "set", id, "--limit-usd=-1"]);
    assert!(!ok && err.contains("positive"), "{err}");
    assert!(!g(&["budgets", "set", "nope", "--hard"]).0);
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

/// Runs `git` in `dir` with a fixed identity; panics on failure.
fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Tester")
        .env("GIT_AUTHOR_EMAIL", "tester@example.com")
        .env("GIT_COMMITTER_NAME", "Tester")
        .env("GIT_COMMITTER_EMAIL", "tester@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn kb_sync_clones_fetches_and_hides_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let team = dir.path().join("team");
    std::fs::create_dir_all(team.join("Places")).unwrap();
    std::fs::write(team.join("Places/Harbor.md"), "# Harbor\nFerries leave at dawn.").unwrap();
    git(&team, &["init", "-q", "-b", "main"]);
    git(&team, &["add", "-A"]);
    git(&team, &["commit", "-q", "-m", "world"]);
    let bare = dir.path().join("world.git");
    git(dir.path(), &["clone", "-q", "--bare", team.to_str().unwrap(), bare.to_str().unwrap()]);
    git(&team, &["remote", "add", "origin", bare.to_str().unwrap()]);
    let config = dir.path().join("gaia.toml");
    let toml = |remote: &str, root: &str| {
        format!(
            "[kb]\nroot = {:?}\nremote = {remote:?}\ntoken = \"ghp_CliSeCrEt42\"\nsync_interval_secs = 0\n",
            dir.path().join(root).display().to_string()
        )
    };
    std::fs::write(&config, toml(&format!("file://{}", bare.display()), "vault")).unwrap();
    let sync = || run(gaia().arg("--config").arg(&config).args(["kb", "sync"]));

    // The first run clones; the next ones fetch and fast-forward.
    let (ok, out, err) = sync();
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"], "up_to_date", "{out}");
    assert_eq!(v["commit"].as_str(), Some(git(&team, &["rev-parse", "HEAD"]).trim()));
    std::fs::write(team.join("Places/Harbor.md"), "# Harbor\nFerries are cancelled.").unwrap();
    git(&team, &["commit", "-q", "-am", "storm"]);
    git(&team, &["push", "-q", "origin", "main"]);
    let (ok, out, err) = sync();
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["state"].as_str(), v["changed"].clone()),
        (Some("fast_forwarded"), serde_json::json!(["Places/Harbor.md"]))
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("vault/Places/Harbor.md")).unwrap(),
        "# Harbor\nFerries are cancelled."
    );

    // An unreachable HTTPS-style remote fails clearly, without showing the token.
    let port = free_port();
    std::fs::write(&config, toml(&format!("http://127.0.0.1:{port}/studio/world.git"), "other")).unwrap();
    let (ok, _, err) = sync();
    assert!(!ok);
    assert!(err.contains("knowledge base") && !err.contains("ghp_CliSeCrEt42"), "{err}");
}

/// A copy of the sample world vault (`../shared/kb-fixtures/world`) in `dir/world`.
fn world_vault(dir: &std::path::Path) -> std::path::PathBuf {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/kb-fixtures/world");
    let dest = dir.join("world");
    gaia_core::testing::copy_dir(&src, &dest);
    dest
}

#[test]
fn kb_search_read_ls_reindex_on_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let vault = world_vault(dir.path());
    let index = dir.path().join("index");
    let kb = |args: &[&str]| {
        run(gaia()
            .current_dir(dir.path())
            .arg("kb")
            .arg("--root")
            .arg(&vault)
            .arg("--index-dir")
            .arg(&index)
            .args(args))
    };
    for sub in ["search", "read", "ls", "sync", "reindex"] {
        let (ok, out, err) = run(gaia().args(["kb", sub, "--help"]));
        assert!(ok && out.contains("Usage"), "{sub}: {err}");
    }

    // Ranked search: text and JSON; CJK and accents work; snippets are plain text in the terminal.
    let (ok, out, err) = kb(&["search", "pharmacy radius"]);
    assert!(ok, "{err}");
    assert!(out.starts_with("1 result(s)") && out.contains("Places/Safe House.md  (Safe House)"), "{out}");
    assert!(!out.contains("<b>"), "{out}");
    let (ok, out, _) = kb(&["search", "霧の日", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(ok && v["hits"][0]["path"] == "Rules/Weather Effects.md", "{out}");
    let (_, out, _) = kb(&["--json", "search", "fog", "--folder", "Rules", "--tag", "weather"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["total"].as_u64(), v["hits"][0]["title"].as_str()), (Some(1), Some("Weather Effects")));
    // Exact and regex, case-insensitive by default.
    let (ok, out, _) = kb(&["search", "19:00", "--exact"]);
    assert!(ok && out.starts_with("Characters/Dr. Mara Quill.md:11: Every evening at 19:00"), "{out}");
    assert_eq!(out.lines().count(), 1);
    let (_, out, _) = kb(&["search", "FOG", "--exact", "--json"]);
    assert!(!serde_json::from_str::<serde_json::Value>(&out).unwrap().as_array().unwrap().is_empty());
    let (_, out, _) = kb(&["search", "FOG", "--exact", "--case-sensitive", "--json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap(), serde_json::json!([]));
    let (ok, out, _) = kb(&["search", r"^## \w+$", "--regex"]);
    assert!(ok && out.lines().count() >= 6 && out.contains("Rules/Weather Effects.md:15: ## Fog"), "{out}");

    // Read by path, name or alias; list.
    let (ok, out, _) = kb(&["read", "Bunker"]);
    assert!(ok && out.starts_with("---\ntitle: Safe House"), "{out}");
    let (_, out, _) = kb(&["read", "Places/Safe House", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["aliases"], serde_json::json!(["Bunker", "The Old Pharmacy"]));
    let (ok, out, _) = kb(&["ls"]);
    assert!(ok && out.starts_with("Characters/  (1 documents)") && out.contains("README.md  Zombie Survival World"));
    let (_, out, _) = kb(&["ls", "--recursive", "--json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap().as_array().unwrap().len(), 5);

    // Re-index: only what changed, or everything.
    std::fs::write(vault.join("Places/Market.md"), "# Market\nTraders barter batteries.").unwrap();
    let (ok, out, _) = kb(&["reindex", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(ok && v["changed"] == serde_json::json!(["Places/Market.md"]), "{out}");
    std::fs::remove_file(vault.join("Places/Market.md")).unwrap();
    let (ok, out, _) = kb(&["reindex"]);
    assert!(ok && out.starts_with("0 document(s) indexed, 1 removed"), "{out}");
    std::fs::write(vault.join("Places/Market.md"), "# Market\nTraders barter batteries.").unwrap();
    let (_, out, _) = kb(&["search", "batteries", "--json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["hits"][0]["path"], "Places/Market.md");
    let (ok, out, _) = kb(&["reindex", "--full"]);
    assert!(ok && out.starts_with("6 document(s) indexed, 0 removed"), "{out}");
    let (ok, out, _) = kb(&["sync"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(ok && v["changed"] == serde_json::json!([]), "{out}");

    // Failures exit non-zero with a message on stderr and nothing on stdout.
    for (args, msg) in [
        (vec!["search", "(", "--regex"], "invalid regular expression"),
        (vec!["search", "   "], "empty"),
        (vec!["search", "x", "--folder", "../up"], "invalid path"),
        (vec!["read", "Nope.md"], "not found"),
        (vec!["read", "../../etc/passwd", "--json"], "invalid path"),
        (vec!["ls", "Nowhere"], "not found"),
    ] {
        let (ok, out, err) = kb(&args);
        assert!(!ok && out.is_empty() && err.contains(msg), "{args:?}: {out} / {err}");
    }
    let (ok, _, err) = run(gaia().current_dir(dir.path()).args(["kb", "search", "x", "--exact", "--regex"]));
    assert!(!ok && err.contains("cannot be used with"), "{err}");
    let (ok, _, err) = run(gaia().current_dir(dir.path()).args(["kb", "search", "fog"]));
    assert!(!ok && err.contains("no knowledge base configured"), "{err}");
}

#[test]
fn kb_search_by_meaning_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let vault = world_vault(dir.path());
    let index = dir.path().join("index");
    let kb = |args: &[&str]| {
        run(gaia()
            .current_dir(dir.path())
            .env("GAIA_DATABASE_URL", format!("sqlite://{}", dir.path().join("gaia.db").display()))
            .arg("kb")
            .arg("--root")
            .arg(&vault)
            .arg("--index-dir")
            .arg(&index)
            .args(args))
    };
    // Without an embedding model: a clear error.
    let (ok, out, err) = kb(&["search", "zombie speed fog", "--semantic"]);
    assert!(!ok && out.is_empty() && err.contains("[embeddings] model"), "{out} / {err}");
    // The word-hashing test fallback (the tests have no model): found, the vectors kept in the
    // database and the index saved beside the search index for the next run.
    std::fs::write(dir.path().join("gaia.toml"), "[embeddings]\ntest_fallback = true\n").unwrap();
    let (ok, out, err) = kb(&["search", "zombie speed visibility weather fog rain", "--semantic"]);
    assert!(ok, "{err}");
    assert!(out.lines().nth(1).is_some_and(|l| l.contains("Rules/Weather Effects.md")), "{out}");
    assert!(dir.path().join("index.vectors").is_dir());
    let (ok, out, err) = kb(&["search", "zombie speed visibility weather fog rain", "--hybrid", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["path"], "Rules/Weather Effects.md", "{out}");
    let (ok, _, err) = kb(&["search", "x", "--semantic", "--exact"]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");
}

#[test]
fn world_list_validate_command_and_reset() {
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../gaia-world/sample");
    let root = sample.to_str().unwrap();
    let (ok, out, err) = run(gaia().args(["world", "validate", "--root", root]));
    assert!(ok, "{err}");
    assert!(out.contains("ok\tsafe-house"), "{out}");
    let (ok, out, _) = run(gaia().args(["world", "list", "--root", root, "--json"]));
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["experiences"][0]["id"], "safe-house");

    // A broken experience: listed with its file and field, exit code 1.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("experiences/broken");
    std::fs::create_dir_all(bad.join("state")).unwrap();
    std::fs::write(bad.join("config.json"), r#"{"id": "broken", "name": "B", "version": "x"}"#).unwrap();
    std::fs::write(bad.join("state/world.json"), "{}").unwrap();
    let (ok, out, _) = run(gaia().args(["world", "validate", "--root", dir.path().to_str().unwrap()]));
    assert!(!ok, "{out}");
    assert!(out.contains("error\tbroken\texperiences/broken/config.json\tversion"), "{out}");

    // Playing as a user, on a temporary database.
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("gaia.db").display());
    let (ok, _, err) =
        run(gaia().env("GAIA_DATABASE_URL", &db).args(["users", "create", "--email", "designer@example.com"]));
    assert!(ok, "{err}");
    let play = |args: &[&str]| {
        let mut all = vec!["world"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--root", root]);
        run(gaia().env("GAIA_DATABASE_URL", &db).args(&all))
    };
    let (ok, out, err) =
        play(&["command", "safe-house", "--user", "designer@example.com", "take", "the", "can", "of", "beans"]);
    assert!(ok, "{out} {err}");
    assert!(out.contains("can of beans"), "{out}");
    let (ok, out, _) = play(&["state", "safe-house", "--user", "designer@example.com"]);
    assert!(ok && out.contains("canned_food_1"), "{out}");
    let (ok, out, _) = play(&["command", "safe-house", "--user", "designer@example.com", "@stats"]);
    assert!(!ok && out.contains("administrators"), "{out}");
    let (ok, out, err) = play(&["reset", "safe-house", "--user", "designer@example.com"]);
    assert!(ok, "{out} {err}");
    let (ok, out, _) = play(&["state", "safe-house", "--user", "designer@example.com"]);
    assert!(ok && !out.contains("canned_food_1"), "{out}");
    let (ok, _, err) = play(&["reset", "safe-house", "--user", "designer@example.com", "--undo"]);
    assert!(ok, "{err}");
    let (ok, out, _) = play(&["state", "safe-house", "--user", "designer@example.com"]);
    assert!(ok && out.contains("canned_food_1"), "{out}");
}

#[test]
fn asset_prices_and_report_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("assets.db").display());
    let g = |args: &[&str]| run(gaia().env("GAIA_DATABASE_URL", &db).arg("assets").args(args));
    let (ok, out, err) = g(&[
        "prices",
        "cost",
        "--provider",
        "openai",
        "--model",
        "dall-e-3",
        "--unit",
        "image:1024x1024:hd",
        "--usd",
        "0.08",
    ]);
    assert!(ok && out.starts_with("recorded "), "{out}{err}");
    assert!(g(&["prices", "sell", "--type", "model_3d", "--usd", "2.5"]).0);
    let (ok, _, err) = g(&["prices", "sell", "--type", "hat", "--usd", "1"]);
    assert!(!ok && err.contains("asset kind"), "{err}");
    let (ok, _, err) = g(&["prices", "cost", "--provider", "p", "--model", "m", "--unit", "image", "--usd=-1"]);
    assert!(!ok && err.contains("non-negative"), "{err}");
    let (ok, out, _) = g(&["prices", "list"]);
    assert!(
        ok && out.contains("cost openai/dall-e-3 per image:1024x1024:hd: $0.08") && out.contains("sell model_3d: $2.5"),
        "{out}"
    );
    let (ok, out, _) = g(&["report", "--csv"]);
    assert!(ok && out.starts_with("type,assets,failed,units,cost_usd,revenue_usd,margin_usd"), "{out}");
    let (ok, _, err) = g(&["report", "--group-by", "planet"]);
    assert!(!ok && err.contains("planet"), "{err}");
    let (ok, out, _) = g(&["--json", "list"]);
    assert!(ok && out.trim() == "[]", "{out}");
}
