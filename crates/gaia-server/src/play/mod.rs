//! `GET /ws/experience?token=<credential>&experience=<exp>[&resume_version=<n>]`: the game client's
//! WebSocket (`../shared/specs/game-worlds.md` §4; message types and field names are exact).
//!
//! - The credential (a JWT or an API key, in the query: game clients cannot set headers on
//!   WebSockets) is checked like the API's (cached; never a password hash); a bad one closes the
//!   socket with 1008, an experience the caller may not read gets an `error`, then a close.
//!   `experience:write` on `/experiences/<exp>` is needed to act (`not_allowed` otherwise),
//!   `experience:admin` for `@` commands.
//! - Client messages: `update_location {lat, lng, accuracy?}` → `area_of_interest`; `action
//!   {action, …}` → `action_response` (+ `npc_speech` for what NPCs said: a `talk`'s answer, goals'
//!   lines; with `voice=true` in the query, also `npc_visemes` and `npc_audio`: module `voice`);
//!   `player_speech {seq, data, last, format?, target_npc_id?}` frames → `player_transcript`, then the
//!   transcript said as a `talk` (or a `scene_say`) with its answers (module `listen`);
//!   `ping` → `pong`; `get_commands`
//!   → `commands_schema`. Any of them may carry `request_id`, echoed in the answer. Errors: `error`
//!   `{code, message}` with the spec's codes.
//! - `world_update` v0.4 deltas through the hub (module `hub`): a socket's `base_version` is always the version
//!   its client has; when that cannot hold (versions lost, a socket behind, another zone) the client
//!   gets a fresh `area_of_interest` instead.
//! - `presence` per zone (module `presence`), at most once a second.
//! - Resume: a client that reconnects within `worlds.resume_grace_secs` with `resume_version` (the
//!   last `snapshot_version` it had) gets the deltas it missed when this instance still has them all,
//!   else one fresh `area_of_interest`; its player never left the zone's presence meanwhile.
//! - Positions: a position implying a speed above `worlds.gps_max_speed_mps`, or reported with an
//!   `accuracy` worse than `worlds.gps_max_accuracy_m`, is not trusted: counted
//!   (`gaia_world_gps_suspicious_total`), audited (at most once a minute per socket), and with
//!   `worlds.gps_response = "refuse"` not used, and the actions that need the player there (collect,
//!   give, talk, complete a quest) refused until a plausible position arrives.
//! - Bounds: frames of at most 16 KiB, 20 messages a second per socket (bursts of 40; beyond, an
//!   `error`; 400 refused, a close), an outbound queue of 256 frames or 1 MiB and frames at most 5 s
//!   old (else a fresh view; three times in a minute, a close with 1013 and a retry hint), small
//!   explicit read and write buffers, no compression; the per-user socket cap shared with
//!   `/ws/chat`; credentials checked again when a revocation is announced and every 30 s (a revoked
//!   key closes with 1008).
//! - Shutdown: when the instance stops, every socket closes with 1012 and a hint to reconnect with
//!   `resume_version` (to another instance, or this one once back); within the grace period the
//!   player resumes without leaving the zone's presence.

mod fix;
mod hub;
mod listen;
mod presence;
mod voice;

pub(crate) use hub::PlayHub;

use crate::state::AppState;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use gaia_core::auth::Principal;
use gaia_core::config::GpsResponse;
use gaia_rbac::Action as Do;
use gaia_world::content::Gps;
use gaia_world::{Action, Worlds};
use hub::{now_ms, Out, Outbox};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest frame a client may send.
const MAX_CLIENT_FRAME: usize = 16 * 1024;
/// Messages a socket may send per second, and in a burst.
const RATE_PER_SEC: f64 = 20.0;
const BURST: f64 = 40.0;
/// Refused messages (over the rate) after which the socket is closed.
const MAX_REFUSED: u32 = 400;
/// A queued delta older than this is dropped for a fresh area of interest.
const MAX_FRAME_AGE: Duration = Duration::from_secs(5);
/// Fresh views for falling behind, within [`BEHIND_WINDOW`], after which the socket is closed.
const MAX_BEHIND: usize = 3;
const BEHIND_WINDOW: Duration = Duration::from_secs(60);
/// Keep-alive pings, and credential checks without an announced revocation.
const PING_EVERY: Duration = Duration::from_secs(30);
/// How often a socket keeps its player's last trusted position for the next socket (and at its end).
const FIX_KEPT_EVERY: Duration = Duration::from_secs(5);
/// At most one audit record of untrusted positions per socket in this time.
const GPS_AUDIT_EVERY: Duration = Duration::from_secs(60);
/// Close codes: policy (bad or revoked credentials, floods), try again later (overloaded).
const CLOSE_POLICY: u16 = 1008;
const CLOSE_AGAIN_LATER: u16 = 1013;
/// The close of every socket when the instance stops (RFC 6455 "service restart").
const CLOSE_RESTART: u16 = 1012;
const RESTARTING: (u16, &str) =
    (CLOSE_RESTART, "server restarting; reconnect in 2 s with resume_version to get what you missed");

/// The query of `GET /ws/experience`.
#[derive(Debug, Deserialize)]
pub struct PlayQuery {
    /// A JWT or an API key.
    #[serde(default)]
    token: String,
    /// The experience.
    #[serde(default)]
    experience: String,
    /// The last `snapshot_version` the client had, to resume.
    #[serde(default)]
    resume_version: Option<i64>,
    /// Whether NPCs' lines are spoken too (`npc_visemes`, `npc_audio`: module `voice`).
    #[serde(default)]
    voice: bool,
}

/// `GET /ws/experience`.
pub async fn experience_socket(
    State(state): State<AppState>,
    Query(q): Query<PlayQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let mut credentials = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", q.token)) {
        credentials.insert(axum::http::header::AUTHORIZATION, v);
    }
    let principal = if q.token.is_empty() {
        None
    } else {
        crate::extract::authenticate(&state, &credentials, &axum::http::Method::GET).await.ok()
    };
    let ws = ws
        .max_message_size(MAX_CLIENT_FRAME)
        .max_frame_size(MAX_CLIENT_FRAME)
        .read_buffer_size(1024)
        .write_buffer_size(8 * 1024)
        .max_write_buffer_size(256 * 1024);
    let Some(p) = principal else {
        return ws.on_upgrade(|socket| close(socket, CLOSE_POLICY, "invalid or missing token"));
    };
    let max = state.config().server.max_sockets_per_user;
    let Some(slot) = state.live_connections().take(&p.user_id, max) else {
        return ws.on_upgrade(move |socket| {
            close(socket, CLOSE_AGAIN_LATER, "too many connections for this user; close one, then retry in 5 s")
        });
    };
    ws.on_upgrade(move |socket| async move {
        run(state, p, credentials, q, socket).await;
        drop(slot);
    })
}

async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let _ = socket.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
}

fn text(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

fn error(code: &str, message: impl Into<String>, request_id: Option<&Value>) -> Value {
    let mut v = json!({"type": "error", "code": code, "message": message.into(), "timestamp": now_ms()});
    if let Some(r) = request_id {
        v["request_id"] = r.clone();
    }
    v
}

/// One game socket.
struct Player {
    state: AppState,
    hub: Arc<PlayHub>,
    p: Principal,
    /// The name shown in presence (read when the player first enters a zone).
    name: Option<String>,
    experience: String,
    world: String,
    can_play: bool,
    admin: bool,
    /// The version the client's view is at (`None`: it has none yet).
    version: Option<i64>,
    /// The last area of interest sent (from `snapshot_version` on), while no delta came after it.
    sent_view: Option<SentView>,
    /// The zone (location) followed, its areas.
    zone: Option<String>,
    zone_centre: Option<Gps>,
    areas: Vec<String>,
    outbox: Arc<Outbox>,
    /// Rate limit: tokens and when they were counted.
    tokens: f64,
    counted: Instant,
    refused: u32,
    /// Fresh views sent for falling behind, recently.
    behind: VecDeque<Instant>,
    /// The last trusted position and when it came (this socket's, or the one kept from the
    /// player's last socket: module `fix`), within how many metres it is known, when it was last
    /// kept; whether positions are trusted now.
    fix: Option<(Gps, Instant)>,
    fix_slack_m: f64,
    fix_kept: Option<Instant>,
    trusted: bool,
    audited: Option<Instant>,
    /// NPCs' lines are spoken (the query's `voice`), one after another.
    voice: bool,
    speaking: Arc<tokio::sync::Mutex<()>>,
    /// The player's utterance being received (`player_speech`: module `listen`).
    listening: Option<listen::Utterance>,
}

/// The last area of interest a socket sent, kept to send again while no delta came after it; the
/// areas are the zone's, serialised once and shared.
struct SentView {
    snapshot_version: i64,
    zone: String,
    areas: Arc<str>,
    player: String,
}

/// Counts the socket in `gaia_world_sockets` while it lives.
struct Counted {
    state: AppState,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.state.metrics().world_socket(-1);
    }
}

async fn run(state: AppState, p: Principal, credentials: HeaderMap, q: PlayQuery, mut socket: WebSocket) {
    let worlds = state.worlds();
    let experience = q.experience;
    let readable = worlds.experience(&experience).is_ok()
        && Box::pin(crate::routes::experiences::may(&state, &p, Do::Read, &experience)).await;
    if !readable {
        let _ = socket.send(text(error("not_allowed", format!("no experience `{experience}` here"), None))).await;
        close(socket, CLOSE_POLICY, "unknown experience").await;
        return;
    }
    // Joining makes the player's world (and them in it).
    let world = match Box::pin(worlds.join(&experience, &p.user_id)).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "game socket could not join its world");
            let _ =
                socket.send(text(error("processing_error", "the game world is unavailable; try again", None))).await;
            close(socket, CLOSE_AGAIN_LATER, "world unavailable; retry in 5 s").await;
            return;
        }
    };
    let hub = state.play_hub();
    let (outbox, mut queue) = hub.register(&p.user_id, &world);
    state.metrics().world_socket(1);
    let _counted = Counted { state: state.clone() };
    let mut s = Player {
        can_play: Box::pin(crate::routes::experiences::may(&state, &p, Do::Write, &experience)).await,
        admin: Box::pin(crate::routes::experiences::may(&state, &p, Do::Admin, &experience)).await,
        state: state.clone(),
        hub: hub.clone(),
        p,
        name: None,
        experience,
        world,
        version: None,
        sent_view: None,
        zone: None,
        zone_centre: None,
        areas: Vec::new(),
        outbox: outbox.clone(),
        tokens: BURST,
        counted: Instant::now(),
        refused: 0,
        behind: VecDeque::new(),
        fix: None,
        fix_slack_m: fix::SLACK_M,
        fix_kept: None,
        trusted: true,
        audited: None,
        voice: q.voice,
        speaking: Arc::default(),
        listening: None,
    };
    s.fix = Box::pin(fix::load(&s.state, &s.experience, &s.p.user_id)).await;
    let connected = json!({"type": "connected", "connection_id": format!("{}-{}", s.p.user_id, outbox.id),
        "user_id": s.p.user_id, "experience": s.experience, "timestamp": now_ms(),
        "message": format!("Connected to {}", s.experience)});
    let mut first = vec![text(connected)];
    if let Some(v) = q.resume_version {
        first.extend(Box::pin(s.resume(v)).await);
    }
    // What a socket holds while it lives is this future: the work of each message (commands, views)
    // is boxed while it runs, so that an idle socket costs little memory.
    let ended = s.play(&mut socket, &mut queue, &credentials, first).await;
    // This socket's last trusted position, for the player's next socket.
    if let (Some((at, when)), Some(_)) = (s.fix, s.fix_kept) {
        Box::pin(fix::save(&s.state, &s.experience, &s.p.user_id, at, when)).await;
    }
    s.hub.unregister(&s.outbox, &s.world, &s.areas);
    s.hub.presence.forget(&s.outbox, &s.world, s.zone.as_deref());
    if let Some((code, reason)) = ended {
        close(socket, code, reason).await;
    }
}

const REVOKED: (u16, &str) = (CLOSE_POLICY, "credentials revoked or expired; sign in again");

impl Player {
    /// The socket's life: returns the close to send, if the server ends it.
    async fn play(
        &mut self,
        socket: &mut WebSocket,
        queue: &mut tokio::sync::mpsc::Receiver<Out>,
        credentials: &HeaderMap,
        first: Vec<Message>,
    ) -> Option<(u16, &'static str)> {
        for m in first {
            socket.send(m).await.ok()?;
        }
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let mut revocations = self.state.auth().watch_revocations();
        let mut draining = self.state.draining();
        if *draining.borrow_and_update() {
            return Some(RESTARTING);
        }
        let mut announced = true;
        loop {
            let out: Vec<Message> = tokio::select! {
                Ok(()) = draining.changed() => {
                    if *draining.borrow_and_update() {
                        return Some(RESTARTING);
                    }
                    Vec::new()
                }
                changed = revocations.changed(), if announced => {
                    announced = changed.is_ok();
                    if !Box::pin(crate::live::still_valid(&self.state, &self.p, credentials)).await {
                        return Some(REVOKED);
                    }
                    Vec::new()
                }
                _ = ping.tick() => {
                    if !Box::pin(crate::live::still_valid(&self.state, &self.p, credentials)).await {
                        return Some(REVOKED);
                    }
                    vec![Message::Ping(Vec::new().into())]
                }
                frame = socket.recv() => match frame {
                    Some(Ok(Message::Text(t))) => {
                        if self.take_token() {
                            Box::pin(self.handle(t.as_str(), socket)).await
                        } else {
                            self.refused += 1;
                            if self.refused >= MAX_REFUSED {
                                return Some((CLOSE_POLICY, "too many messages; reconnect in 10 s and slow down"));
                            }
                            vec![text(error("not_allowed", "too many messages; slow down", None))]
                        }
                    }
                    Some(Ok(Message::Binary(_))) => vec![text(error("invalid_json", "messages are JSON text", None))],
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                    Some(Ok(_)) => continue,
                },
                out = queue.recv() => match out {
                    Some(out) => Box::pin(self.queued(out)).await,
                    None => return None,
                },
            };
            for m in out {
                socket.send(m).await.ok()?;
            }
            if self.outbox.overflowed.swap(false, Ordering::Relaxed) {
                // Fell behind: what is queued is dropped for one fresh view; again and again, a close.
                while let Ok(o) = queue.try_recv() {
                    self.outbox.taken(&o);
                }
                if self.fell_behind() {
                    return Some((CLOSE_AGAIN_LATER, "too slow to keep up; reconnect in 5 s"));
                }
                for m in Box::pin(self.refresh(None, "behind")).await {
                    socket.send(m).await.ok()?;
                }
            }
        }
    }

    /// Counts a fresh view for falling behind; whether it happened too often.
    fn fell_behind(&mut self) -> bool {
        let now = Instant::now();
        self.behind.retain(|t| now.duration_since(*t) < BEHIND_WINDOW);
        self.behind.push_back(now);
        self.behind.len() > MAX_BEHIND
    }

    fn take_token(&mut self) -> bool {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.counted).as_secs_f64() * RATE_PER_SEC).min(BURST);
        self.counted = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// A delta for versions `(base, snapshot]`, as this client's frame: its `base_version` is the
    /// version the client has, `None` when the client has it already.
    fn delta_frame(&mut self, base: i64, snapshot: i64, body: &str) -> Option<Result<Message, ()>> {
        let version = self.version.filter(|v| snapshot > *v)?;
        if base < version {
            return Some(Err(()));
        }
        // Versions between the client's and `base` touched nothing it shows (the hub hands on
        // every change in order): the delta applies to what it has.
        let frame = format!("{{\"type\":\"world_update\",\"base_version\":{version},{}", &body[1..]);
        self.version = Some(snapshot);
        self.sent_view = None;
        Some(Ok(Message::Text(Utf8Bytes::from(frame))))
    }

    /// A frame from the hub, as sent to this client.
    async fn queued(&mut self, o: Out) -> Vec<Message> {
        self.outbox.taken(&o);
        match o {
            Out::Resync => self.refresh(None, "lost").await,
            Out::Frame(f) => vec![Message::Text(Utf8Bytes::from(f.to_string()))],
            Out::Delta(d) => {
                if d.queued.elapsed() > MAX_FRAME_AGE {
                    return self.refresh(None, "behind").await;
                }
                match self.delta_frame(d.base, d.snapshot, &d.body) {
                    None => Vec::new(),
                    Some(Err(())) => self.refresh(None, "lost").await,
                    // The player went elsewhere: perhaps another zone, a new view.
                    Some(Ok(_)) if d.moved => self.refresh(None, "zone").await,
                    Some(Ok(m)) => {
                        self.state.metrics().world_update_delay(d.queued.elapsed());
                        vec![m]
                    }
                }
            }
        }
    }

    /// A fresh `area_of_interest` (following its zone first, so that nothing after it is missed).
    async fn refresh(&mut self, request_id: Option<&Value>, reason: &'static str) -> Vec<Message> {
        if reason != "request" && reason != "zone" {
            self.state.metrics().world_resync(reason);
        }
        // Asked again with nothing changed in the view since it was sent (every change touching it
        // comes as a delta, which drops this copy): the same view, no database read.
        let sent = match self.sent_view.take().filter(|_| reason == "request") {
            Some(sent) => sent,
            None => match self.view().await {
                // The areas are serialised once per version and zone, shared by every socket.
                Ok(a) => SentView {
                    snapshot_version: a.snapshot_version,
                    zone: json!(a.zone).to_string(),
                    areas: self.hub.areas_json(&self.world, &a),
                    player: a.player.to_string(),
                },
                Err(e) => return vec![text(error("processing_error", e, request_id))],
            },
        };
        let mut frame = format!(
            "{{\"type\":\"area_of_interest\",\"timestamp\":{},\"snapshot_version\":{},\"zone\":{},\"areas\":{},\"player\":{}",
            now_ms(),
            sent.snapshot_version,
            sent.zone,
            sent.areas,
            sent.player
        );
        self.sent_view = Some(sent);
        if let Some(r) = request_id {
            frame.push_str(&format!(",\"request_id\":{r}"));
        }
        if !self.trusted {
            frame.push_str(",\"position_trusted\":false");
        }
        frame.push('}');
        vec![Message::Text(frame.into())]
    }

    /// Reads the area of interest and follows its zone.
    async fn view(&mut self) -> Result<gaia_world::AreaOfInterest, String> {
        self.sent_view = None;
        let worlds = self.state.worlds();
        for _ in 0..3 {
            let a = worlds.area_of_interest(&self.experience, &self.p.user_id).await.map_err(|e| e.to_string())?;
            let areas: Vec<String> = a.areas.keys().cloned().collect();
            let zone = a.zone.as_ref().and_then(|z| z["id"].as_str()).map(str::to_string);
            if zone != self.zone {
                if let Some(old) = &self.zone {
                    self.hub.presence.leave(&self.outbox, &self.world, old, true);
                }
                self.zone_centre = a.zone.as_ref().and_then(|z| serde_json::from_value(z["gps"].clone()).ok());
                if let Some(new) = &zone {
                    if self.name.is_none() {
                        self.name = Some(crate::live::participant(&self.state, &self.p).await.name);
                    }
                    let name = self.name.as_deref().unwrap_or_default();
                    self.hub.presence.enter(&self.outbox, &self.world, new, name, self.whereabouts());
                }
                self.zone = zone;
            }
            self.hub.known(&self.world, a.snapshot_version);
            if areas != self.areas {
                self.hub.follow(&self.outbox, &self.world, &self.areas, &areas);
                self.areas = areas;
                // Changes between the read and following: read again.
                if self.hub.last(&self.world) > a.snapshot_version {
                    continue;
                }
            }
            self.version = Some(a.snapshot_version);
            return Ok(a);
        }
        Err("the world changes too fast; ask again".into())
    }

    /// Where the player is, coarsely, for the zone's presence: their distance to its centre and
    /// their cell (0 when unknown).
    fn whereabouts(&self) -> presence::Whereabouts {
        let Some((at, _)) = self.fix else { return presence::Whereabouts::default() };
        presence::Whereabouts {
            distance_m: self
                .zone_centre
                .map_or(0, |c| gaia_world::distance_m(at, c).round().min(u32::MAX as f64) as u32),
            cell: gaia_world::geo::area_cell(at).unwrap_or(0),
        }
    }

    /// Resumes from `version`: the deltas missed when all are known here, else a fresh view.
    async fn resume(&mut self, version: i64) -> Vec<Message> {
        let Some(missed) = self.hub.since(&self.world, version) else {
            return self.refresh(None, "resume_miss").await;
        };
        if missed.iter().any(|c| c.moves(&self.p.user_id)) {
            return self.refresh(None, "zone").await;
        }
        // Follow the zone (the view read is not sent), then replay what touched it.
        if let Err(e) = self.view().await {
            return vec![text(error("processing_error", e, None))];
        }
        let now = self.version.unwrap_or(version);
        self.version = Some(version);
        let mut out = Vec::new();
        let user = self.p.user_id.clone();
        let touching: Vec<_> = missed.iter().filter(|c| c.snapshot <= now && c.touches(&user, &self.areas)).collect();
        for c in touching {
            match self.delta_frame(c.base, c.snapshot, &c.body_for(&user)) {
                Some(Ok(m)) => out.push(m),
                Some(Err(())) => return self.refresh(None, "resume_miss").await,
                None => {}
            }
        }
        // Versions up to the view's touched nothing else it shows.
        self.version = Some(self.version.unwrap_or(version).max(version));
        out
    }

    async fn handle(&mut self, frame: &str, live: &mut WebSocket) -> Vec<Message> {
        let Ok(Value::Object(m)) = serde_json::from_str::<Value>(frame) else {
            return vec![text(error("invalid_json", "a message is a JSON object", None))];
        };
        let request_id = m.get("request_id").filter(|r| r.is_string() || r.is_number()).cloned();
        let rid = request_id.as_ref();
        let with_id = |mut v: Value| {
            if let Some(r) = rid {
                v["request_id"] = r.clone();
            }
            text(v)
        };
        let Some(kind) = m.get("type").and_then(Value::as_str) else {
            return vec![text(error("missing_type", "a message has a `type`", rid))];
        };
        match kind {
            "ping" => vec![with_id(json!({"type": "pong", "timestamp": now_ms()}))],
            "get_commands" => match self.state.worlds().commands_schema(&self.experience, self.admin) {
                Ok(commands) => {
                    vec![with_id(json!({"type": "commands_schema", "commands": commands, "timestamp": now_ms()}))]
                }
                Err(e) => vec![text(error("processing_error", e.to_string(), rid))],
            },
            "update_location" => self.update_location(&m, rid).await,
            "action" => self.action(&m, rid, live).await,
            "player_speech" => self.player_speech(&m, rid, live).await,
            other => vec![text(error(
                "unknown_message_type",
                format!("unknown message type `{}`", other.chars().take(64).collect::<String>()),
                rid,
            ))],
        }
    }

    async fn update_location(&mut self, m: &Map<String, Value>, rid: Option<&Value>) -> Vec<Message> {
        let coord = |k: &str| m.get(k).and_then(Value::as_f64).filter(|x| x.is_finite());
        let (Some(lat), Some(lng)) = (coord("lat"), coord("lng")) else {
            return vec![text(error("missing_coordinates", "`lat` and `lng` are numbers", rid))];
        };
        if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lng) {
            return vec![text(error("missing_coordinates", "`lat` is -90 to 90, `lng` -180 to 180", rid))];
        }
        let at = Gps { lat, lng };
        let accuracy = m.get("accuracy").and_then(Value::as_f64);
        if let Some(why) = self.implausible(at, accuracy) {
            let response = self.state.config().worlds.gps_response;
            let label = match response {
                GpsResponse::Flag => "flag",
                GpsResponse::Refuse => "refuse",
            };
            self.state.metrics().world_gps_suspicious(label);
            if self.audited.is_none_or(|t| t.elapsed() >= GPS_AUDIT_EVERY) {
                self.audited = Some(Instant::now());
                let details = json!({"experience": self.experience, "why": why, "response": label});
                crate::audit::record(
                    &self.state,
                    Some(&self.p.user_id),
                    "world.gps_suspicious",
                    &self.p.user_id,
                    details,
                )
                .await;
            }
            if response == GpsResponse::Refuse {
                self.trusted = false;
                return self.refresh(rid, "request").await;
            }
        }
        self.trusted = true;
        self.fix = Some((at, Instant::now()));
        self.fix_slack_m = 0.0;
        if self.fix_kept.is_none_or(|t| t.elapsed() >= FIX_KEPT_EVERY) {
            self.fix_kept = Some(Instant::now());
            Box::pin(fix::save(&self.state, &self.experience, &self.p.user_id, at, Instant::now())).await;
        }
        // Another zone moves the player (a change); within theirs, nothing is written.
        let zone = self.state.worlds().zone_for(&self.experience, at, self.zone.as_deref()).ok().flatten();
        if self.can_play && zone.is_some() && zone != self.zone {
            if let Err(e) = self.state.worlds().update_location(&self.experience, &self.p.user_id, at).await {
                return vec![text(error("processing_error", e.to_string(), rid))];
            }
            self.sent_view = None;
        }
        if let Some(zone) = &self.zone {
            self.hub.presence.moved(&self.world, zone, &self.p.user_id, self.whereabouts());
        }
        self.refresh(rid, "request").await
    }

    /// Why position `at` (reported `accuracy`) is not to be trusted, if it is not.
    fn implausible(&self, at: Gps, accuracy: Option<f64>) -> Option<String> {
        let cfg = &self.state.config().worlds;
        if let Some(a) = accuracy {
            if !a.is_finite() || a < 0.0 || a > cfg.gps_max_accuracy_m {
                return Some(format!("accuracy {a} m"));
            }
        }
        let (last, when) = self.fix?;
        // Fixes less than a second apart are judged over one second (clients batch them).
        let secs = when.elapsed().as_secs_f64().max(1.0);
        let speed = (gaia_world::distance_m(last, at) - self.fix_slack_m).max(0.0) / secs;
        (speed > cfg.gps_max_speed_mps).then(|| format!("{speed:.0} m/s"))
    }

    /// A frame of the player's speech; the last one has it transcribed, then said (module `listen`).
    async fn player_speech(
        &mut self,
        m: &Map<String, Value>,
        rid: Option<&Value>,
        live: &mut WebSocket,
    ) -> Vec<Message> {
        if !self.can_play {
            return vec![text(error("not_allowed", "you may look at this experience but not play it", rid))];
        }
        if !self.trusted {
            // What is said is a talk (or a scene's line): refused before anything is transcribed.
            self.listening = None;
            return vec![text(error(
                "not_allowed",
                "your position is not confirmed: send a plausible update_location first",
                rid,
            ))];
        }
        let heard = match listen::take(&mut self.listening, m, self.state.config().assets.max_audio_bytes) {
            Ok(None) => return Vec::new(),
            Ok(Some(h)) => h,
            Err(why) => return vec![text(error("invalid_json", format!("bad player_speech: {why}"), rid))],
        };
        let ask = gaia_assets::TranscriptionAsk {
            audio: heard.audio.into(),
            file_name: heard.file_name,
            language: heard.language,
            ..Default::default()
        };
        let said = match self.state.assets().transcribe(&self.p, Default::default(), ask).await {
            Ok((_, t)) => t.text.trim().chars().take(gaia_world::command::MAX_MESSAGE_CHARS).collect::<String>(),
            Err(e) => {
                return vec![text(error("processing_error", format!("the speech could not be transcribed: {e}"), rid))]
            }
        };
        let mut transcript = json!({"type": "player_transcript", "text": said, "timestamp": now_ms()});
        if let Some(r) = rid {
            transcript["request_id"] = r.clone();
        }
        let mut out = vec![text(transcript)];
        if said.is_empty() {
            return out;
        }
        // What was said, as the player's line: to the NPC named, else in the scene under way.
        let mut action = Map::new();
        match heard.target_npc_id {
            Some(npc) => {
                action.insert("action".into(), json!("talk"));
                action.insert("target_npc_id".into(), json!(npc));
            }
            None => {
                action.insert("action".into(), json!("scene_say"));
            }
        }
        action.insert("message".into(), json!(said));
        out.extend(Box::pin(self.action(&action, rid, live)).await);
        out
    }

    async fn action(&mut self, m: &Map<String, Value>, rid: Option<&Value>, live: &mut WebSocket) -> Vec<Message> {
        if m.get("action").and_then(Value::as_str).is_none_or(|a| a.trim().is_empty()) {
            return vec![text(error("missing_action", "an `action` message names its `action`", rid))];
        }
        let action: Action = match serde_json::from_value(Value::Object(m.clone())) {
            Ok(a) => a,
            Err(e) => return vec![text(error("invalid_json", format!("bad action: {e}"), rid))],
        };
        if let Err(why) = action.check() {
            return vec![text(error("invalid_json", why, rid))];
        }
        if !self.can_play {
            return vec![text(error("not_allowed", "you may look at this experience but not play it", rid))];
        }
        if !self.trusted && Worlds::location_bound(&action) {
            return vec![text(error(
                "not_allowed",
                "your position is not confirmed: send a plausible update_location first",
                rid,
            ))];
        }
        let caller = match crate::routes::experiences::caller_for(&self.state, &self.p, &self.experience, &action).await
        {
            Ok(c) => c,
            Err(r) => return vec![text(error("not_allowed", r.message, rid))],
        };
        // A command that calls a model streams what NPCs say to the socket while it runs: the
        // answer's text, and with voice its sentences spoken as they complete (module `voice`).
        let streams = Worlds::needs_model(&action);
        let (sink, mut rx) = voice::Live::channel(&self.outbox);
        let speaker = self.voice.then(|| voice::speaker(&self.state, &self.p, sink.clone(), &self.speaking));
        let sentences = Arc::new(std::sync::Mutex::new(voice::Sentences::default()));
        let line_id = uuid::Uuid::new_v4().to_string();
        let caller = if streams {
            let voices = self.state.worlds().experience(&self.experience).ok();
            let (sink, sentences, line_id) = (sink.clone(), sentences.clone(), line_id.clone());
            let (speaker, rid) = (speaker.clone(), rid.cloned());
            caller.with_speech(Arc::new(move |npc: &str, delta: &str| {
                let mut v = json!({"type": "npc_speech_delta", "npc_id": npc, "line_id": line_id, "delta": delta,
                                   "timestamp": now_ms()});
                if let Some(r) = &rid {
                    v["request_id"] = r.clone();
                }
                sink.push_now(v);
                let done = sentences.lock().unwrap_or_else(|e| e.into_inner()).push(npc, delta);
                for (npc, sentence) in done {
                    let voice = voices.as_ref().and_then(|e| e.npc_templates.get(&npc)).and_then(|t| t.voice.clone());
                    if let Some(speaker) = &speaker {
                        let _ = speaker
                            .send(json!({"npc_id": npc, "text": sentence, "voice": voice, "answer_id": line_id}));
                    }
                }
            }))
        } else {
            caller
        };
        // The command runs in a task of its own: a client slow to read never holds up a world's
        // change (a send waiting on the socket does not stop the command).
        let command = {
            let (worlds, experience, action) = (self.state.worlds().clone(), self.experience.clone(), action.clone());
            tokio::spawn(async move { worlds.command(&experience, caller, &action).await })
        };
        tokio::pin!(command);
        let result = loop {
            tokio::select! {
                r = &mut command => break r,
                Some(v) = rx.recv() => {
                    let _ = live.send(text(v)).await;
                }
            }
        };
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "a game command's task failed");
                return vec![text(error("processing_error", "the command failed; try again", rid))];
            }
        };
        // Done: what is still in the live channel now, the rest through the queue.
        rx.close();
        while let Ok(v) = rx.try_recv() {
            let _ = live.send(text(v)).await;
        }
        let (streamed, rest) = {
            let mut s = sentences.lock().unwrap_or_else(|e| e.into_inner());
            (s.any, s.rest())
        };
        let r = match result {
            Ok(r) => r,
            Err(e) => return vec![text(error("processing_error", e.to_string(), rid))],
        };
        // A guardrail refused the answer after some of it streamed: the NPC's refusal is the line.
        let refused = r.metadata.as_ref().is_some_and(|m| m["refused"] == true);
        let rest = rest.filter(|_| !refused);
        let mut v = json!({"type": "action_response", "action": action.action, "success": r.success,
                           "message": r.message, "timestamp": now_ms()});
        if let Some(meta) = &r.metadata {
            v["metadata"] = meta.clone();
        }
        if let Some(id) = &r.item_id {
            v["item_id"] = json!(id);
        }
        if let Some(aa) = &r.available_actions {
            v["available_actions"] = json!(aa);
        }
        if let Some(x) = rid {
            v["request_id"] = x.clone();
        }
        let mut out = vec![text(v)];
        // A streamed answer's voice: its last sentence (the others were spoken as they came).
        if let (Some((npc, sentence)), Some(speaker)) = (rest.filter(|_| r.success), &speaker) {
            let voice = r.metadata.as_ref().and_then(|m| m.get("voice")).cloned();
            let _ = speaker.send(json!({"npc_id": npc, "text": sentence, "voice": voice, "answer_id": line_id}));
        }
        // What NPCs said, for the client to show or voice: the answer of a `talk` (or a scene's
        // line), then the lines of the goals and scene sections the command set off.
        if let Some(meta) = r.metadata.as_ref().filter(|_| r.success) {
            let answer = std::iter::once(meta).filter(|m| m.get("text").is_some());
            let reactions = meta.get("npc_reactions").and_then(Value::as_array).into_iter().flatten();
            for (i, said) in answer.map(|m| (true, m)).chain(reactions.map(|m| (false, m))).enumerate() {
                let (is_answer, said) = said;
                if let (Some(npc), Some(line)) = (said.get("npc_id"), said.get("text")) {
                    let mut v = json!({"type": "npc_speech", "npc_id": npc, "text": line, "voice": said.get("voice"),
                                       "timestamp": now_ms()});
                    if let Some(e) = said.get("emotion") {
                        v["emotion"] = e.clone();
                    }
                    // The streamed answer: its deltas' line (the final text), already spoken sentence
                    // by sentence (unless refused: then the refusal is spoken).
                    let streamed_here = is_answer && i == 0 && streamed;
                    let spoken_already = streamed_here && !refused;
                    if streamed_here {
                        v["line_id"] = json!(line_id);
                    }
                    if let Some(speaker) = speaker.as_ref().filter(|_| !spoken_already) {
                        let _ = speaker.send(v.clone());
                    }
                    out.push(text(v));
                }
            }
        }
        out
    }
}
