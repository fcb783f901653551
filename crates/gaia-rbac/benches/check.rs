//! `Rbac::check` against a policy of 10,000 grants, cached and uncached, with a baseline measured in the
//! same run: one lookup of the same key in a `HashSet` (the cheapest possible answer).
//!
//! Run: `cargo bench -p gaia-rbac --bench check`.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use gaia_core::storage::Storage;
use gaia_rbac::{Action, Rbac, Resource, Subject};
use std::collections::HashSet;

const USERS: usize = 2_000;
const TEAMS: usize = 500;
const GRANTS: usize = 10_000;

/// A SQLite database in memory with `USERS` users, `TEAMS` teams and `GRANTS` team-scoped grants.
async fn policy() -> (Rbac, Vec<String>, Vec<String>) {
    let s = Storage::connect("sqlite::memory:").await.unwrap();
    s.migrate().await.unwrap();
    let mut users = Vec::with_capacity(USERS);
    for i in 0..USERS {
        users.push(s.create_user(&format!("u{i}@example.com"), None, None).await.unwrap().id);
    }
    let mut tx = s.pool().begin().await.unwrap();
    let teams: Vec<String> = (0..TEAMS).map(|i| format!("team-{i:04}")).collect();
    for t in &teams {
        sqlx::query("INSERT INTO rbac_teams (id, kind, name, created_at) VALUES ($1, 'team', $1, 0)")
            .bind(t)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let roles = ["kb_reader", "kb_editor", "kb_admin"];
    for i in 0..GRANTS {
        sqlx::query("INSERT INTO rbac_grants (id, user_id, role, group_id, created_at) VALUES ($1, $2, $3, $4, 0)")
            .bind(format!("g{i}"))
            .bind(&users[i % USERS])
            .bind(roles[i % roles.len()])
            .bind(&teams[(i * 7) % TEAMS])
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    (Rbac::load(s).await.unwrap(), users, teams)
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (rbac, users, teams) = rt.block_on(policy());
    // User 0 holds grants in teams 0, 7, 14, …; ask about a document of its last team (a late match)
    // and about one it cannot read (every permission is tried).
    let subject = Subject::user(users[0].clone());
    let last_team = &teams[((GRANTS - USERS) * 7) % TEAMS];
    let allowed = Resource::kb_document(&format!("teams/{last_team}/quests/q1.md"));
    let denied = Resource::kb_document("teams/nobody/quests/q1.md");
    assert!(rbac.check(&subject, Action::Read, &allowed).allowed);
    assert!(!rbac.check(&subject, Action::Read, &denied).allowed);
    let baseline: HashSet<(String, String)> = [(subject.user_id.clone(), allowed.path.clone())].into_iter().collect();

    let mut g = c.benchmark_group("rbac_check_10k_grants");
    g.bench_function("baseline_hashset_lookup", |b| {
        b.iter(|| {
            black_box(baseline.contains(&(black_box(&subject.user_id).clone(), black_box(&allowed.path).clone())))
        })
    });
    g.bench_function("cached_allowed", |b| {
        b.iter(|| black_box(rbac.check(black_box(&subject), Action::Read, black_box(&allowed))))
    });
    g.bench_function("cached_denied", |b| {
        b.iter(|| black_box(rbac.check(black_box(&subject), Action::Read, black_box(&denied))))
    });
    g.bench_function("uncached_allowed", |b| {
        b.iter(|| black_box(rbac.check_uncached(black_box(&subject), Action::Read, black_box(&allowed))))
    });
    g.bench_function("uncached_denied", |b| {
        b.iter(|| black_box(rbac.check_uncached(black_box(&subject), Action::Read, black_box(&denied))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
