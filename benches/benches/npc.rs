//! NPC turns on the sample world (Sam), through Gaia's HTTP API on SQLite (and PostgreSQL when
//! `GAIA_TEST_DATABASE_URL` is set), with the mock upstream answering at once (its latency is the
//! loopback's):
//!
//! - a `talk` (template, relationship, goals, memory recall, the model call, the exchange and the
//!   relationship written in one change): Gaia's own time, the mock's included, against the baseline
//!   of the same model call made straight to the mock (no Gaia), and the peer of a fast command
//!   (`look`, no model);
//! - a `talk` whose answer is an action (a tool call, checked and applied in the talk's change) until
//!   the `world_update` reaches the event bus;
//! - the first text and the first audio of a `talk` at a game client (a socket with `voice=true`),
//!   the mock answering as a fast model (150 ms to its first token, 10 ms a chunk), against the
//!   baseline of the same stream straight from the mock (to its first text; to its first sentence,
//!   then the mock's speech call for it), and speech to speech (the player's utterance sent as
//!   `player_speech` frames, transcribed, answered and spoken) against the mock's transcription,
//!   stream and speech call in a row;
//! - memory retrieval with 10,000 memories of one player and NPC (`Worlds::recall_npc_memories`: one
//!   indexed count, the query embedded by the mock, 10,000 vectors scored), against the baseline of
//!   the embedding round trip alone.
//!
//! `cargo bench -p gaia-benches --bench npc`. Prints Markdown tables for BENCHMARKS.md.

use gaia_core::events::Event;
use gaia_core::storage::Storage;
use gaia_core::vectors::{Embedder, VectorStore};
use gaia_providers::mock::{MockConfig, MockUpstream};
use gaia_providers::openai::{OpenAiConfig, OpenAiProvider};
use gaia_providers::ProviderRegistry;
use gaia_server::state::AppState;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXP: &str = "safe-house";
const MEMORIES: usize = 10_000;
const DIMS: u32 = 256;

fn percentile(v: &mut [Duration], q: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * q).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

struct Setup {
    state: AppState,
    url: String,
    mock_url: String,
    http: reqwest::Client,
    mock: gaia_providers::mock::MockHandle,
    _dir: tempfile::TempDir,
}

async fn setup(storage: Storage) -> Setup {
    let mock = MockUpstream::start("127.0.0.1:0".parse().unwrap(), MockConfig::default()).await.unwrap();
    let mock_url = mock.openai_base_url();
    let registry = ProviderRegistry::new();
    registry.register(Arc::new(OpenAiProvider::new(OpenAiConfig::new(mock.openai_base_url(), Some("k".into())))));
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        gaia_core::Config { jwt_secret: Some("bench-secret-0123456789-0123456789".into()), ..Default::default() };
    config.chat.auto_title = false;
    config.chat.memory = false;
    config.worlds.npc_memory = false;
    config.embeddings.model = Some("openai/text-embedding-3-small".into());
    config.embeddings.dimensions = Some(DIMS);
    config.assets.speech_model = Some("openai/tts-1".into());
    config.assets.transcription_model = Some("openai/whisper-1".into());
    config.assets.store = dir.path().join("assets").display().to_string();
    let state = AppState::new(config, storage, Arc::new(gaia_core::cache::MemoryCache::new(100_000)), registry);
    let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/gaia-world/sample/experiences");
    gaia_core::testing::copy_dir(&sample, &dir.path().join("experiences"));
    let kb = gaia_kb::Kb::open(gaia_kb::KbConfig {
        root: dir.path().to_path_buf(),
        sync_interval_secs: 0,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(state.set_kb(kb));
    state.reload_worlds().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = state.clone();
    tokio::spawn(async move {
        gaia_server::serve(listener, served, std::future::pending()).await.unwrap();
    });
    Setup { state, url, mock_url, http: reqwest::Client::new(), mock, _dir: dir }
}

/// A new player and their API key.
async fn player(s: &Setup, name: &str) -> (String, String) {
    let u = s
        .state
        .storage()
        .create_user(&format!("{name}-{}@example.com", uuid::Uuid::new_v4()), None, None)
        .await
        .unwrap();
    let (_, key) = s.state.auth().create_api_key(&u.id, None).await.unwrap();
    (u.id, key)
}

async fn command(s: &Setup, key: &str, body: serde_json::Value) -> serde_json::Value {
    let r = s
        .http
        .post(format!("{}/api/v1/experiences/{EXP}/command", s.url))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

/// The fast model the mock plays for the voice figures: its first token, and each later chunk.
const FIRST_TOKEN: Duration = Duration::from_millis(150);
const CHUNK: Duration = Duration::from_millis(10);
/// The answer it streams: three sentences.
const ANSWER: &str = "Copy that, friend. The river group answers at dusk. Keep the channel clear.";

/// Times of the voice rounds.
struct Voice {
    direct_text: Vec<Duration>,
    text: Vec<Duration>,
    direct_audio: Vec<Duration>,
    audio: Vec<Duration>,
    direct_speech: Vec<Duration>,
    speech: Vec<Duration>,
}

/// What the player says, spoken: the mock's speech (its transcription reads the text back).
const SPOKEN: &str = "Sam, is the river group on the air tonight?";

/// A multipart body for the mock's transcription endpoint: `(content type, body)`.
fn transcription_form(audio: &[u8]) -> (String, Vec<u8>) {
    let boundary = "gaia-bench-boundary";
    let mut body = Vec::new();
    body.extend(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n").as_bytes(),
    );
    body.extend(
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"speech.wav\"\r\nContent-Type: audio/wav\r\n\r\n")
            .as_bytes(),
    );
    body.extend(audio);
    body.extend(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The baseline of a voiced answer: the same model stream straight from the mock, read until its
/// first sentence, then the mock's speech call for that sentence. Returns when the first text a
/// player sees came (the answer's first word, after its emotion tag).
async fn direct_first_sentence_spoken(s: &Setup, message: &str) -> Duration {
    use futures::StreamExt;
    let t = Instant::now();
    let body = json!({"model": "mock-gpt", "stream": true, "messages": [{"role": "user", "content": message}]});
    let r = s.http.post(format!("{}/chat/completions", s.mock_url)).bearer_auth("k").json(&body).send().await.unwrap();
    let mut stream = r.bytes_stream();
    let (mut seen, mut first) = (String::new(), None);
    while let Some(chunk) = stream.next().await {
        seen.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        // The first text a player would see: the answer's first word, after its emotion tag.
        if first.is_none() && seen.contains("Copy") {
            first = Some(t.elapsed());
        }
        if seen.contains("friend.") {
            break;
        }
    }
    let speech =
        json!({"model": "tts-1", "voice": "calm_low", "input": "Copy that, friend.", "response_format": "wav"});
    let r = s.http.post(format!("{}/audio/speech", s.mock_url)).bearer_auth("k").json(&speech).send().await.unwrap();
    r.bytes().await.unwrap();
    first.unwrap_or_else(|| t.elapsed())
}

/// Reads a socket until a talk's answer is in and its three sentences spoken: when the first
/// `npc_speech_delta` and the first `npc_audio` came, from `t`.
async fn answered<S>(ws: &mut S, t: Instant) -> (Duration, Duration)
where
    S: futures::Stream<Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>>
        + Unpin,
{
    use futures::StreamExt;
    let (mut text, mut audio, mut lines_done, mut answered) = (None, None, 0, false);
    while lines_done < 3 || !answered {
        let m = ws.next().await.unwrap().unwrap();
        let tokio_tungstenite::tungstenite::Message::Text(m) = m else { continue };
        let f: serde_json::Value = serde_json::from_str(m.as_str()).unwrap();
        match f["type"].as_str() {
            Some("npc_speech_delta") if text.is_none() => text = Some(t.elapsed()),
            Some("npc_audio") => {
                assert!(f.get("error").is_none(), "{f}");
                if audio.is_none() {
                    audio = Some(t.elapsed());
                }
                if f["last"] == true {
                    lines_done += 1;
                }
            }
            Some("action_response") => {
                assert_eq!(f["success"], true, "{f}");
                answered = true;
            }
            Some("error") => panic!("{f}"),
            _ => {}
        }
    }
    (text.expect("streamed"), audio.expect("spoken"))
}

async fn first_text_and_audio(s: &Setup, key: &str) -> Voice {
    use futures::SinkExt;
    let rounds = 100;
    s.mock.set_first_byte_delay(FIRST_TOKEN);
    s.mock.set_chunk_delay(CHUNK);
    let mut v = Voice {
        direct_text: Vec::new(),
        text: Vec::new(),
        direct_audio: Vec::new(),
        audio: Vec::new(),
        direct_speech: Vec::new(),
        speech: Vec::new(),
    };
    for i in 0..rounds {
        s.mock.push_reply(format!("[happy 0.6] {ANSWER}"));
        let t = Instant::now();
        let first = direct_first_sentence_spoken(s, &format!("Copy? {i}")).await;
        v.direct_text.push(first);
        v.direct_audio.push(t.elapsed());
    }
    let url = format!("{}/ws/experience?token={key}&experience={EXP}&voice=true", s.url.replace("http://", "ws://"));
    // A game client sends small frames at once (no Nagle delay), as the server does.
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await.unwrap();
    for i in 0..rounds {
        s.mock.push_reply(format!("[happy 0.6] {ANSWER}"));
        let t = Instant::now();
        let action = json!({"type": "action", "action": "talk", "target_npc_id": "radio_operator", "message": format!("Copy? {i}")});
        ws.send(tokio_tungstenite::tungstenite::Message::Text(action.to_string().into())).await.unwrap();
        let (text, audio) = answered(&mut ws, t).await;
        v.text.push(text);
        v.audio.push(audio);
    }
    // Speech to speech: the player's utterance (frames of 8 KiB) transcribed, answered, spoken;
    // against the mock's transcription, stream to its first sentence and speech call, in a row.
    let speech = json!({"model": "tts-1", "voice": "alloy", "input": SPOKEN, "response_format": "wav"});
    let utterance =
        s.http.post(format!("{}/audio/speech", s.mock_url)).bearer_auth("k").json(&speech).send().await.unwrap();
    let utterance = utterance.bytes().await.unwrap().to_vec();
    for i in 0..rounds {
        s.mock.push_reply(format!("[happy 0.6] {ANSWER}"));
        let t = Instant::now();
        let (kind, body) = transcription_form(&utterance);
        let heard: serde_json::Value = s
            .http
            .post(format!("{}/audio/transcriptions", s.mock_url))
            .bearer_auth("k")
            .header("content-type", kind)
            .body(body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(heard["text"], SPOKEN, "{heard}");
        direct_first_sentence_spoken(s, &format!("{SPOKEN} {i}")).await;
        v.direct_speech.push(t.elapsed());
    }
    for _ in 0..rounds {
        use base64::Engine as _;
        s.mock.push_reply(format!("[happy 0.6] {ANSWER}"));
        let t = Instant::now();
        let chunks: Vec<&[u8]> = utterance.chunks(8 * 1024).collect();
        for (seq, chunk) in chunks.iter().enumerate() {
            let frame = json!({"type": "player_speech", "seq": seq, "last": seq + 1 == chunks.len(), "format": "wav",
                               "target_npc_id": "radio_operator",
                               "data": base64::engine::general_purpose::STANDARD.encode(chunk)});
            ws.send(tokio_tungstenite::tungstenite::Message::Text(frame.to_string().into())).await.unwrap();
        }
        let (_, audio) = answered(&mut ws, t).await;
        v.speech.push(audio);
    }
    s.mock.set_first_byte_delay(Duration::ZERO);
    s.mock.set_chunk_delay(Duration::ZERO);
    v
}

fn talk(message: &str) -> serde_json::Value {
    json!({"action": "talk", "target_npc_id": "radio_operator", "message": message})
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dbs = rt.block_on(gaia_core::testing::database_urls());
    println!("| store | operation | p50 | p99 |");
    println!("|---|---|---|---|");
    let mut notes = Vec::new();
    for db in dbs {
        let backend = db.backend;
        rt.block_on(async {
            // A fresh database of this backend.
            let s = setup(db.storage().await).await;
            let (_, key) = player(&s, "ann").await;
            let rounds = 400;

            // Baseline: the same chat call straight to the mock.
            let mut direct = Vec::new();
            for i in 0..rounds {
                let t = Instant::now();
                let r = s
                    .http
                    .post(format!("{}/chat/completions", s.mock_url))
                    .bearer_auth("k")
                    .json(&json!({"model": "mock-gpt", "messages": [{"role": "user", "content": format!("Copy? {i}")}]}))
                    .send()
                    .await
                    .unwrap();
                r.bytes().await.unwrap();
                direct.push(t.elapsed());
            }
            // Peer: a fast command (no model).
            let mut look = Vec::new();
            for _ in 0..rounds {
                let t = Instant::now();
                command(&s, &key, json!({"action": "look"})).await;
                look.push(t.elapsed());
            }
            // An NPC turn.
            let mut turns = Vec::new();
            for i in 0..rounds {
                let t = Instant::now();
                let r = command(&s, &key, talk(&format!("Copy? over {i}"))).await;
                turns.push(t.elapsed());
                assert_eq!(r["success"], true, "{r}");
            }
            // An action, until its world_update is on the bus (a fresh player each: the quest is
            // started once per player).
            let mut events = s.state.events().subscribe();
            let mut actions = Vec::new();
            for _ in 0..200 {
                let (id, key) = player(&s, "actor").await;
                let t = Instant::now();
                let r = command(&s, &key, talk(r#"call tool offer_quest {"quest": "first_aid"}"#)).await;
                assert_eq!(r["metadata"]["actions"][0]["ok"], true, "{r}");
                loop {
                    match events.recv().await {
                        Ok(Event::WorldUpdate { user_id, changes, .. })
                            if user_id.as_deref() == Some(id.as_str()) && changes.iter().any(|c| c["path"] == "player.quests") =>
                        {
                            break
                        }
                        Ok(_) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                actions.push(t.elapsed());
            }

            // First text and first audio at a game client (a socket with voice), the mock answering
            // as a fast model; against the baseline of the same stream straight from the mock, until
            // its first text and until its first sentence, plus the mock's speech call.
            let voice = first_text_and_audio(&s, &key).await;

            // Memory retrieval with 10,000 memories of one player and Sam.
            let (mem_user, _) = player(&s, "rememberer").await;
            s.state.worlds().view(EXP, &mem_user).await.unwrap();
            let world: String = sqlx::query_scalar("SELECT world_id FROM world_players WHERE user_id = $1")
                .bind(&mem_user)
                .fetch_one(s.state.storage().pool())
                .await
                .unwrap();
            let admitted = gaia_chat::Admitted::internal("bench");
            let embedder = s.state.engine().embedder(admitted.clone(), gaia_world::MEMORY_ENDPOINT).unwrap();
            let space = embedder.space();
            let scope = format!("npcmem:{mem_user}:{world}:radio_operator");
            let words = ["fog", "radio", "medkit", "roof", "crows", "diesel", "generator", "pharmacy", "river", "dog"];
            let mut items = Vec::with_capacity(MEMORIES);
            for i in 0..MEMORIES {
                let text = format!("memory {i}: {} {} {} near the {}", words[i % 10], words[(i / 10) % 10], i % 97, words[(i / 100) % 10]);
                let hash = gaia_core::vectors::content_hash(&text);
                sqlx::query(
                    "INSERT INTO world_npc_memories (world_id, user_id, npc_id, id, text, importance, created_at) \
                     VALUES ($1, $2, 'radio_operator', $3, $4, $5, $6)",
                )
                .bind(&world)
                .bind(&mem_user)
                .bind(&hash)
                .bind(&text)
                .bind((i % 10 + 1) as i64)
                .bind(1_700_000_000_000i64 + i as i64)
                .execute(s.state.storage().pool())
                .await
                .unwrap();
                items.push((hash, gaia_core::vectors::unit(gaia_providers::mock::mock_embedding(&text, DIMS as usize))));
            }
            s.state.storage().put(&scope, &space, &items).await.unwrap();
            sqlx::query(
                "INSERT INTO world_npc_relations (world_id, user_id, npc_id, memory_stamp, updated_at) \
                 VALUES ($1, $2, 'radio_operator', 'seeded', 0)",
            )
            .bind(&world)
            .bind(&mem_user)
            .execute(s.state.storage().pool())
            .await
            .unwrap();
            let principal = gaia_core::auth::Principal {
                user_id: mem_user.clone(),
                email: None,
                is_admin: false,
                method: gaia_core::auth::AuthMethod::Jwt,
            };
            let caller_admitted = s.state.engine().admit(&principal, true).await.unwrap().budgets(None).await.unwrap();
            let caller = gaia_world::Caller::admitted(caller_admitted);
            // The first recall reads the 10,000 memories and vectors; the next ones reuse them.
            let t = Instant::now();
            let first = s.state.worlds().recall_npc_memories(EXP, caller.clone(), "radio_operator", "the dog by the river").await.unwrap();
            let cold = t.elapsed();
            assert_eq!(first.len(), gaia_world::PROMPT_MEMORIES);
            let mut recall = Vec::new();
            let mut embed_only = Vec::new();
            for i in 0..rounds {
                let message = format!("where is the dog {i} by the river");
                let t = Instant::now();
                let m = s.state.worlds().recall_npc_memories(EXP, caller.clone(), "radio_operator", &message).await.unwrap();
                recall.push(t.elapsed());
                assert_eq!(m.len(), gaia_world::PROMPT_MEMORIES);
                let t = Instant::now();
                embedder.embed(&[format!("{message} again")]).await.unwrap();
                embed_only.push(t.elapsed());
            }

            let rows: Vec<(&str, Vec<Duration>)> = vec![
                ("chat call straight to the mock (baseline)", direct),
                ("`look` (fast command, no model: peer)", look),
                ("NPC `talk` (recall, model call, one change)", turns),
                ("NPC `talk` with an action, until its `world_update` is published", actions),
                ("embedding round trip to the mock (baseline of recall)", embed_only),
                ("memory recall, 10,000 memories (query embedded, all scored)", recall),
                ("model stream straight from the mock: first text (baseline)", voice.direct_text),
                ("NPC `talk` on a voice socket: first `npc_speech_delta`", voice.text),
                ("model stream straight from the mock to its first sentence, then its speech call (baseline)", voice.direct_audio),
                ("NPC `talk` on a voice socket: first `npc_audio`", voice.audio),
                ("mock transcription, stream to its first sentence, speech call, in a row (baseline)", voice.direct_speech),
                ("player speech (8 KiB frames) to the first `npc_audio`", voice.speech),
            ];
            let mut p50s = Vec::new();
            for (what, mut t) in rows {
                let p50 = percentile(&mut t, 0.5);
                let p99 = percentile(&mut t, 0.99);
                p50s.push((p50, p99));
                println!("| {backend} | {what} | {} | {} |", ms(p50), ms(p99));
            }
            let own = |i: usize, base: usize| {
                (p50s[i].0.saturating_sub(p50s[base].0), p50s[i].1.saturating_sub(p50s[base].1))
            };
            let (turn50, _) = own(2, 0);
            let (_, recall99) = own(5, 4);
            let (text50, _) = own(7, 6);
            let (audio50, _) = own(9, 8);
            let (speech50, _) = own(11, 10);
            notes.push(format!(
                "{backend}: Gaia's own time in an NPC turn (talk p50 less the direct model call's p50) {}; an action to its \
                 world_update p99 {}; memory recall p99 less the embedding round trip's p99 {}; the first recall \
                 (10,000 memories and vectors read) {}; Gaia's own time to the first text at the client (p50 less \
                 the direct stream's first text) {}, to the first audio (p50 less the direct stream's first sentence \
                 and speech call) {}, speech to speech (p50 less the mock's transcription, first sentence and \
                 speech call) {}",
                ms(turn50),
                ms(p50s[3].1),
                ms(recall99),
                ms(cold),
                ms(text50),
                ms(audio50),
                ms(speech50),
            ));
        });
    }
    println!();
    for n in notes {
        println!("- {n}");
    }
}
