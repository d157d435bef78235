//! The operations dashboard (`/ui`): its static files, compiled into the binary so the
//! page loads with no network and `cargo build` needs no Node.js, served with headers
//! that let it run only its own scripts and talk only to this origin.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::error::ApiError;
use super::state::AppState;

/// One file of the page: its name under `/ui/`, its media type and its bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the page; `index.html` is served at `/ui`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: HTML,
        body: include_str!("../../ui/index.html"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../ui/app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../../ui/favicon.svg"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_str!("../../ui/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        body: include_str!("../../ui/api.js"),
    },
    Asset {
        name: "format.js",
        content_type: JS,
        body: include_str!("../../ui/format.js"),
    },
    Asset {
        name: "live.js",
        content_type: JS,
        body: include_str!("../../ui/live.js"),
    },
    Asset {
        name: "session.js",
        content_type: JS,
        body: include_str!("../../ui/session.js"),
    },
    Asset {
        name: "chart.js",
        content_type: JS,
        body: include_str!("../../ui/chart.js"),
    },
    Asset {
        name: "overview.js",
        content_type: JS,
        body: include_str!("../../ui/overview.js"),
    },
    Asset {
        name: "orders.js",
        content_type: JS,
        body: include_str!("../../ui/orders.js"),
    },
    Asset {
        name: "order.js",
        content_type: JS,
        body: include_str!("../../ui/order.js"),
    },
    Asset {
        name: "webhooks.js",
        content_type: JS,
        body: include_str!("../../ui/webhooks.js"),
    },
];

/// Scripts and styles from this origin only, no inline code, calls to this origin
/// only, and never inside another site's frame.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// `/ui`, `/ui/` and `/ui/{file}`; open like `/docs`, since the files hold no data and
/// every call the page makes goes through the API's own access rules.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { asset("index.html") }))
        .route("/ui/", get(|| async { asset("index.html") }))
        .route(
            "/ui/{file}",
            get(|file: Path<String>| async move { asset(&file) }),
        )
}

fn asset(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|asset| asset.name == name) else {
        return ApiError::NotFound("no such file of the dashboard".into()).into_response();
    };
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.body,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // The files change with the binary: a browser checks again rather than run a
    // page older than the API it calls.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Every file in `ui/` is served, and nothing is listed that is not there: a file
    /// added to the folder but not to `ASSETS` would load in development and 404 here.
    #[test]
    fn every_file_of_the_ui_folder_is_listed_once() {
        let folder = concat!(env!("CARGO_MANIFEST_DIR"), "/ui");
        let on_disk: BTreeSet<String> = std::fs::read_dir(folder)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        let listed: BTreeSet<String> = ASSETS.iter().map(|a| a.name.to_owned()).collect();
        assert_eq!(on_disk, listed);
        assert_eq!(listed.len(), ASSETS.len());
    }

    #[test]
    fn every_script_the_page_imports_is_listed() {
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            for line in asset.body.lines() {
                if let Some(rest) = line.split(" from \"./").nth(1) {
                    let name = rest.split('"').next().unwrap();
                    assert!(
                        ASSETS.iter().any(|a| a.name == name),
                        "{} imports {name}, which is not served",
                        asset.name
                    );
                }
            }
        }
    }
}
