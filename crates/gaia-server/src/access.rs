//! Every route declares what it needs ([`Access`]), and a middleware enforces it before the handler
//! runs: routes are added only through [`Routes`], which records each declaration in the table that
//! [`crate::route_table`] returns (a test walks it).
//!
//! A permission is checked with [`gaia_rbac::Rbac::check`] on a resource path built from the route's
//! template: `{user}` is the caller's id and `{name}` a path parameter of the route, so
//! `/users/{user}/conversations/{id}` asks whether the caller may act on conversations in their own
//! area. Ownership itself stays in storage (another user's conversation is a 404, never a 403).

use crate::error::ApiError;
use crate::extract::Auth;
use crate::state::AppState;
use axum::extract::{FromRequestParts, RawPathParams, Request, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::MethodRouter;
use axum::Router;
use gaia_rbac::{Action, Resource, ResourceType, Subject};
use serde::Serialize;

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Access {
    /// Nothing: anyone may call it (sign-in, health, static assets, and routes that authenticate by
    /// other means, such as a webhook signature).
    Public,
    /// `action` on the resource of `type` at the path built from the template.
    Permission(ResourceType, Action, &'static str),
    /// `action` on some resource of `type`; the handler then checks (or filters) each resource it
    /// touches (knowledge-base searches and edits).
    AnyOf(ResourceType, Action),
    /// A signed-in caller; the handler checks the permission described (for requests whose resource
    /// is in the body, such as sharing).
    SignedIn(&'static str),
}

/// One declared route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteDecl {
    /// HTTP method.
    pub method: String,
    /// Path, with `{param}` placeholders.
    pub path: String,
    /// `public`, or `<type>:<action> <template>`, or `<type>:<action> (per resource)`.
    pub access: String,
    /// An HTML page: without a session it redirects to `/login` instead of answering 401.
    pub page: bool,
    /// It calls models: the conversation engine's admission runs before its handler
    /// ([`Routes::quota`]).
    pub admitted: bool,
}

impl Access {
    /// How the route table shows it.
    pub fn describe(&self) -> String {
        match self {
            Access::Public => "public".into(),
            Access::Permission(t, a, tpl) => format!("{t}:{a} {tpl}"),
            Access::AnyOf(t, a) => format!("{t}:{a} (per resource)"),
            Access::SignedIn(what) => format!("signed in; handler checks {what}"),
        }
    }
}

/// A router under construction that records what each route needs.
pub struct Routes {
    state: AppState,
    prefix: String,
    router: Router<AppState>,
    table: Vec<RouteDecl>,
    errors: ErrorRenderer,
    quota: bool,
}

/// Renders an access error (401, 403) in the shape of the API a route speaks.
pub type ErrorRenderer = fn(&HeaderMap, ApiError) -> Response;

fn gaia_errors(_: &HeaderMap, e: ApiError) -> Response {
    e.into_response()
}

impl Routes {
    /// Routes mounted under `prefix` (`""` for the root).
    pub fn new(state: &AppState, prefix: &str) -> Self {
        Routes {
            state: state.clone(),
            prefix: prefix.to_string(),
            router: Router::new(),
            table: Vec::new(),
            errors: gaia_errors,
            quota: false,
        }
    }

    /// Whether the routes added from now on call models, and so are subject to rate limits and
    /// budgets (the conversation engine's admission, `gaia_chat::Engine::admit`), checked after access control
    /// and before the handler.
    pub fn quota(mut self, on: bool) -> Self {
        self.quota = on;
        self
    }

    /// Access errors of the routes added from now on are rendered by `f` (the compatible endpoints
    /// answer in OpenAI's or Anthropic's error shape).
    pub fn errors(mut self, f: ErrorRenderer) -> Self {
        self.errors = f;
        self
    }

    fn add<H, T>(mut self, method: Method, path: &str, access: Access, page: bool, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.table.push(RouteDecl {
            method: method.to_string(),
            path: format!("{}{path}", self.prefix),
            access: access.describe(),
            page,
            admitted: self.quota,
        });
        let filter = axum::routing::MethodFilter::try_from(method).unwrap_or(axum::routing::MethodFilter::GET);
        let errors = self.errors;
        let mut mr: MethodRouter<AppState> = axum::routing::on(filter, handler);
        if self.quota {
            // The route's access may already be the permission to use models.
            let checked =
                access == Access::Permission(ResourceType::Provider, Action::Read, gaia_chat::MODELS_RESOURCE);
            mr = mr.route_layer(middleware::from_fn_with_state(
                self.state.clone(),
                move |State(st): State<AppState>, req: Request, next: Next| {
                    crate::admission::admit(st, errors, checked, req, next)
                },
            ));
        }
        // Added last, so it runs first.
        let mr = mr.route_layer(middleware::from_fn_with_state(
            self.state.clone(),
            move |State(st): State<AppState>, req: Request, next: Next| enforce(st, access, page, errors, req, next),
        ));
        self.router = self.router.route(path, mr);
        self
    }

    /// A `GET` route.
    pub fn get<H: Handler<T, AppState>, T: 'static>(self, path: &str, access: Access, h: H) -> Self {
        self.add(Method::GET, path, access, false, h)
    }
    /// A `POST` route.
    pub fn post<H: Handler<T, AppState>, T: 'static>(self, path: &str, access: Access, h: H) -> Self {
        self.add(Method::POST, path, access, false, h)
    }
    /// A `PATCH` route.
    pub fn patch<H: Handler<T, AppState>, T: 'static>(self, path: &str, access: Access, h: H) -> Self {
        self.add(Method::PATCH, path, access, false, h)
    }
    /// A `PUT` route.
    pub fn put<H: Handler<T, AppState>, T: 'static>(self, path: &str, access: Access, h: H) -> Self {
        self.add(Method::PUT, path, access, false, h)
    }
    /// A `DELETE` route.
    pub fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &str, access: Access, h: H) -> Self {
        self.add(Method::DELETE, path, access, false, h)
    }
    /// A `GET` HTML page (redirects to `/login` without a session).
    pub fn page<H: Handler<T, AppState>, T: 'static>(self, path: &str, access: Access, h: H) -> Self {
        self.add(Method::GET, path, access, true, h)
    }
    /// A `POST` HTML form (redirects to `/login` without a session).
    pub fn page_post<H: Handler<T, AppState>, T: 'static>(self, path: &str, access: Access, h: H) -> Self {
        self.add(Method::POST, path, access, true, h)
    }

    /// A tower service (such as the MCP endpoint) at `path`, answering `methods`, behind the same
    /// access check.
    pub fn service<S>(mut self, path: &str, methods: &[Method], access: Access, svc: S) -> Self
    where
        S: tower::Service<Request, Error = std::convert::Infallible> + Clone + Send + Sync + 'static,
        S::Response: IntoResponse + 'static,
        S::Future: Send + 'static,
    {
        for m in methods {
            self.table.push(RouteDecl {
                method: m.to_string(),
                path: format!("{}{path}", self.prefix),
                access: access.describe(),
                page: false,
                admitted: false,
            });
        }
        let errors = self.errors;
        let layer = middleware::from_fn_with_state(
            self.state.clone(),
            move |State(st): State<AppState>, req: Request, next: Next| enforce(st, access, false, errors, req, next),
        );
        self.router = self.router.route_service(path, tower::Layer::layer(&layer, svc));
        self
    }

    /// Adds a layer to the routes added so far.
    pub fn layer_all(mut self, f: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Self {
        self.router = f(self.router);
        self
    }

    /// Merges routes made with the prefix `""`: they are mounted where these are.
    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        let prefix = self.prefix.clone();
        self.table.extend(other.table.into_iter().map(|mut d| {
            d.path = format!("{prefix}{}", d.path);
            d
        }));
        self
    }

    /// Nests `other` under its own prefix (below these routes' prefix).
    pub fn nest(mut self, other: Routes) -> Self {
        self.router = self.router.nest(&other.prefix, other.router);
        let prefix = self.prefix.clone();
        self.table.extend(other.table.into_iter().map(|mut d| {
            d.path = format!("{prefix}{}", d.path);
            d
        }));
        self
    }

    /// The router and the table of declarations.
    pub fn finish(self) -> (Router<AppState>, Vec<RouteDecl>) {
        (self.router, self.table)
    }
}

/// The resource path of a template for this caller and request.
fn resource_path(template: &str, user: &str, params: &RawPathParams) -> String {
    let mut out = template.replace("{user}", user);
    for (k, v) in params.iter() {
        // Path parameters may not smuggle separators or wildcards into the checked path.
        let clean: String = v.chars().map(|c| if matches!(c, '/' | '*') { '_' } else { c }).collect();
        out = out.replace(&format!("{{{k}}}"), &clean);
    }
    out
}

async fn enforce(
    state: AppState,
    access: Access,
    page: bool,
    errors: ErrorRenderer,
    req: Request,
    next: Next,
) -> Response {
    let (required, template) = match access {
        Access::Public => return next.run(req).await,
        Access::Permission(t, a, tpl) => (Some((t, a)), Some(tpl)),
        Access::AnyOf(t, a) => (Some((t, a)), None),
        Access::SignedIn(_) => (None, None),
    };
    let (mut parts, body) = req.into_parts();
    // Pages and their forms are signed in by the session cookie alone (a form carries its CSRF token
    // in its fields, which its handler checks); everything else through the API's credentials.
    let principal = if page {
        let session = crate::session::cookie(&parts.headers, crate::session::SESSION_COOKIE);
        match session {
            Some(token) => match state.auth().authenticate_session(&token).await {
                Ok((p, _)) => p,
                Err(_) => return Redirect::to("/login").into_response(),
            },
            None => return Redirect::to("/login").into_response(),
        }
    } else {
        match Auth::from_request_parts(&mut parts, &state).await {
            Ok(Auth(p)) => p,
            Err(e) => return errors(&parts.headers, e),
        }
    };
    let rbac = state.rbac().await;
    let subject = Subject::from(&principal);
    let Some((resource_type, action)) = required else {
        parts.extensions.insert(principal);
        return next.run(Request::from_parts(parts, body)).await;
    };
    let allowed = match template {
        Some(tpl) => {
            let params = match RawPathParams::from_request_parts(&mut parts, &state).await {
                Ok(p) => p,
                Err(e) => return errors(&parts.headers, ApiError::bad_request(e.body_text())),
            };
            let resource = Resource::new(resource_type, resource_path(tpl, &principal.user_id, &params));
            let d = rbac.check(&subject, action, &resource);
            if !d.allowed {
                tracing::debug!(user_id = %principal.user_id, %resource, %action, reason = %d.reason, "access denied");
            }
            d.allowed
        }
        None => rbac.can_any(&subject, action, resource_type),
    };
    if !allowed {
        let e = ApiError::new(StatusCode::FORBIDDEN, format!("you may not {action} {resource_type} resources here"));
        return errors(&parts.headers, e);
    }
    parts.extensions.insert(principal);
    next.run(Request::from_parts(parts, body)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions() {
        assert_eq!(Access::Public.describe(), "public");
        let a = Access::Permission(ResourceType::Conversation, Action::Read, "/users/{user}/conversations/{id}");
        assert_eq!(a.describe(), "conversation:read /users/{user}/conversations/{id}");
        assert_eq!(Access::AnyOf(ResourceType::Kb, Action::Write).describe(), "kb:write (per resource)");
    }
}
