//! The operator dashboard at `/ui` (being built).

use super::AppState;

pub(super) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
}
