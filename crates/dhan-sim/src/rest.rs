//! The REST host (stands in for `https://api.dhan.co/v2`, dhan-api.md §2.4–§4): token
//! checks, RenewToken, profile, orders and their life cycle, trades, portfolio, funds, the
//! kill switch and the static IP (`getIP`, `setIP`).

use std::sync::Arc;

use hyper::Method;
use serde_json::{Value, json};

use crate::book::AfterTransit;
use crate::clock::{ist, token_validity};
use crate::error::ApiError;
use crate::fault::{Fault, FaultPoint};
use crate::orders::validate_order;
use crate::server::{Reply, Req, gateway_error};
use crate::state::{Shared, token_body};
use crate::token::TokenKind;

/// A known REST endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    RenewToken,
    Profile,
    PlaceOrder,
    ListOrders,
    GetOrder(String),
    ExternalOrder(String),
    CancelOrder(String),
    Trades(Option<String>),
    Positions,
    ExitAll,
    Holdings,
    FundLimit,
    KillSwitchStatus,
    KillSwitchSet,
    GetIp,
    SetIp,
}

/// Maps method and path to a route, or to the answer for an unknown path / wrong method.
/// This comes before the token check, as at the gateway: an unknown path is a 404 even
/// without a token.
fn route(shared: &Shared, req: &Req, segs: &[&str]) -> Result<Route, Reply> {
    let m = &req.method;
    let wrong_method = || gateway_error(shared, 405, "Method Not Allowed", &req.path);
    let route = match segs {
        ["RenewToken"] => match *m {
            Method::GET => Route::RenewToken,
            // Live answers a POST with 400 DH-905 (dhan-api.md §2.4).
            _ => {
                return Err(
                    ApiError::input("Invalid request method for RenewToken; use GET").into(),
                );
            }
        },
        ["profile"] => match *m {
            Method::GET => Route::Profile,
            _ => return Err(wrong_method()),
        },
        ["orders"] => match *m {
            Method::GET => Route::ListOrders,
            Method::POST => Route::PlaceOrder,
            _ => return Err(wrong_method()),
        },
        ["orders", "external", id] => match *m {
            Method::GET => Route::ExternalOrder((*id).to_owned()),
            _ => return Err(wrong_method()),
        },
        ["orders", id] => match *m {
            Method::GET => Route::GetOrder((*id).to_owned()),
            Method::DELETE => Route::CancelOrder((*id).to_owned()),
            _ => return Err(wrong_method()),
        },
        ["trades"] => match *m {
            Method::GET => Route::Trades(None),
            _ => return Err(wrong_method()),
        },
        ["trades", id] => match *m {
            Method::GET => Route::Trades(Some((*id).to_owned())),
            _ => return Err(wrong_method()),
        },
        ["positions"] => match *m {
            Method::GET => Route::Positions,
            Method::DELETE => Route::ExitAll,
            _ => return Err(wrong_method()),
        },
        ["holdings"] => match *m {
            Method::GET => Route::Holdings,
            _ => return Err(wrong_method()),
        },
        ["fundlimit"] => match *m {
            Method::GET => Route::FundLimit,
            _ => return Err(wrong_method()),
        },
        ["ip", "getIP"] => match *m {
            Method::GET => Route::GetIp,
            _ => return Err(wrong_method()),
        },
        ["ip", "setIP" | "modifyIP"] => match *m {
            Method::POST | Method::PUT => Route::SetIp,
            _ => return Err(wrong_method()),
        },
        ["killswitch"] => match *m {
            Method::GET => Route::KillSwitchStatus,
            Method::POST => Route::KillSwitchSet,
            _ => return Err(wrong_method()),
        },
        _ => return Err(gateway_error(shared, 404, "Not Found", &req.path)),
    };
    Ok(route)
}

/// Handles `/v2/...`; `segs` are the path segments after `v2`.
pub(crate) async fn dispatch(shared: &Arc<Shared>, req: &Req, segs: &[&str]) -> Reply {
    let route = match route(shared, req, segs) {
        Ok(route) => route,
        Err(reply) => return reply,
    };
    {
        let mut state = shared.lock();
        if state.faults.take(FaultPoint::Rest).is_some() {
            return ApiError::invalid_token().into();
        }
        if req.method == hyper::Method::GET && state.faults.take(FaultPoint::RestRead).is_some() {
            return ApiError::dh(
                500,
                "Internal_Server_Error",
                "DH-908",
                "Internal Server Error",
            )
            .into();
        }
        if let Err(e) = state.check_token(req.header("access-token")) {
            return e.into();
        }
    }
    let client_id = shared.config.client_id.as_str();
    match route {
        Route::PlaceOrder => place_order(shared, req).await,
        Route::RenewToken => renew_token(shared, req),
        Route::Profile => {
            let state = shared.lock();
            let expires = state
                .active
                .as_ref()
                .map(|t| t.expires_at)
                .unwrap_or_else(|| state.now());
            let now = state.now();
            let data_validity = now
                .checked_add_signed(chrono::Duration::days(365))
                .unwrap_or(now)
                .with_timezone(&ist())
                .format("%Y-%m-%d %H:%M:%S.0")
                .to_string();
            Reply::ok(json!({
                "dhanClientId": client_id,
                "tokenValidity": token_validity(expires),
                "activeSegment": "Equity, Derivative, Currency, Commodity",
                "ddpi": "Active",
                "mtf": "Active",
                "dataPlan": "Active",
                "dataValidity": data_validity,
            }))
        }
        Route::ListOrders => {
            let state = shared.lock();
            let rows: Vec<Value> = state
                .book
                .orders
                .iter()
                .map(|o| state.book.order_json(o, client_id))
                .collect();
            Reply::ok(Value::Array(rows))
        }
        Route::GetOrder(id) => {
            let state = shared.lock();
            match state.book.get(&id) {
                Some(o) => Reply::ok(state.book.order_json(o, client_id)),
                // Live answers an unknown id with 200 and an empty array.
                None => Reply::ok(json!([])),
            }
        }
        Route::ExternalOrder(correlation_id) => {
            let state = shared.lock();
            match state.book.by_correlation(&correlation_id) {
                Some(o) if o.sim.status != "TRANSIT" => {
                    Reply::ok(state.book.order_json(o, client_id))
                }
                // Unknown, or not yet past TRANSIT: indistinguishable on live.
                _ => ApiError::order_lookup_miss().into(),
            }
        }
        Route::CancelOrder(id) => {
            let mut state = shared.lock();
            if let Err(e) = order_write_gate(shared, &mut state) {
                return e.into();
            }
            let now = state.now();
            match state.book.cancel(&id, now) {
                Ok(()) => Reply::Json(202, json!({"orderId": id, "orderStatus": "CANCELLED"})),
                Err(e) => e.into(),
            }
        }
        Route::Trades(order_id) => {
            let state = shared.lock();
            Reply::ok(Value::Array(
                state.book.trades_json(client_id, order_id.as_deref()),
            ))
        }
        Route::Positions => {
            let state = shared.lock();
            Reply::ok(Value::Array(state.book.positions_json(client_id)))
        }
        Route::ExitAll => {
            let mut state = shared.lock();
            let now = state.now();
            state.book.exit_all(now, client_id);
            Reply::ok(json!({
                "status": "SUCCESS",
                "message": "All pending orders cancelled and open positions exited",
            }))
        }
        Route::Holdings => {
            let state = shared.lock();
            if state.book.holdings.is_empty() {
                // Production answers an empty portfolio with a 500 (dhan-api.md §4).
                return ApiError::dh(500, "HOLDING_ERROR", "DH-1111", "No holdings available")
                    .into();
            }
            Reply::ok(Value::Array(state.book.holdings.clone()))
        }
        Route::FundLimit => Reply::ok(json!({
            "dhanClientId": client_id,
            "availabelBalance": 1_000_000.0,
            "sodLimit": 1_000_000.0,
            "collateralAmount": 0.0,
            "receiveableAmount": 0.0,
            "utilizedAmount": 0.0,
            "blockedPayoutAmount": 0.0,
            "withdrawableBalance": 1_000_000.0,
        })),
        Route::GetIp => {
            let state = shared.lock();
            let peer = req.peer.to_string();
            let [primary, secondary] = state.static_ips.clone();
            // Unset at the simulator's start: the setting decides whether this machine counts.
            let primary = primary.unwrap_or_else(|| {
                if state.whitelisted_ip {
                    peer.clone()
                } else {
                    NOT_THIS_MACHINE.to_owned()
                }
            });
            let listed = [Some(primary.as_str()), secondary.as_deref()];
            let matches = listed.contains(&Some(peer.as_str()));
            Reply::ok(json!({
                "dhanClientId": client_id,
                "primaryIP": primary,
                "secondaryIP": secondary.unwrap_or_default(),
                "modifyDatePrimary": "2026-11-01",
                "modifyDateSecondary": "",
                // Undocumented fields seen on the wire (dhan-api.md §2.7).
                "detectedIP": peer,
                "ipMatchStatus": if matches { "MATCHED" } else { "NOT_MATCHED" },
                "ordersAllowed": matches && state.whitelisted_ip,
            }))
        }
        Route::SetIp => {
            let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
            let ip = body["ip"].as_str().unwrap_or_default().to_owned();
            let slot = match body["ipFlag"].as_str() {
                Some("PRIMARY") => 0,
                Some("SECONDARY") => 1,
                _ => return ApiError::input("ipFlag must be PRIMARY or SECONDARY").into(),
            };
            if ip.parse::<std::net::IpAddr>().is_err() {
                return ApiError::input("ip must be an IPv4 or IPv6 address").into();
            }
            let mut state = shared.lock();
            state.whitelisted_ip = ip == req.peer.to_string()
                || state.static_ips[1 - slot].as_deref() == Some(&req.peer.to_string());
            state.static_ips[slot] = Some(ip);
            Reply::ok(json!({"message": "IP saved successfully", "status": "SUCCESS"}))
        }
        Route::KillSwitchStatus => {
            let state = shared.lock();
            let status = if state.book.kill_switch_active(state.now()) {
                "ACTIVATE"
            } else {
                "DEACTIVATE"
            };
            Reply::ok(json!({"dhanClientId": client_id, "killSwitchStatus": status}))
        }
        Route::KillSwitchSet => {
            let mut state = shared.lock();
            match req.query_param("killSwitchStatus") {
                Some("ACTIVATE") => {
                    if state.book.has_open_exposure() {
                        return ApiError::order(
                            400,
                            "Kill Switch cannot be activated while there are open positions or pending orders",
                        )
                        .into();
                    }
                    let today = crate::clock::ist_date(state.now());
                    state.book.kill_switch_day = Some(today);
                    Reply::ok(json!({
                        "dhanClientId": client_id,
                        "killSwitchStatus": "Kill Switch has been successfully activated",
                    }))
                }
                Some("DEACTIVATE") => {
                    state.book.kill_switch_day = None;
                    Reply::ok(json!({
                        "dhanClientId": client_id,
                        "killSwitchStatus": "Kill Switch has been successfully deactivated",
                    }))
                }
                _ => ApiError::input("killSwitchStatus must be ACTIVATE or DEACTIVATE").into(),
            }
        }
    }
}

/// The PRIMARY IP `getIP` shows while this machine is not whitelisted (TEST-NET-3, RFC 5737).
const NOT_THIS_MACHINE: &str = "203.0.113.45";

/// `GET /v2/RenewToken`: only a web-generated (SELF) token can be renewed.
fn renew_token(shared: &Shared, req: &Req) -> Reply {
    let config = &shared.config;
    if req.header("dhanClientId") != Some(config.client_id.as_str()) {
        return ApiError::input("dhanClientId header is missing or does not match the token")
            .into();
    }
    let mut state = shared.lock();
    match state.active.as_ref().map(|t| t.kind) {
        Some(TokenKind::SelfWeb) => {}
        _ => {
            return ApiError::input(
                "RenewToken is allowed only for access tokens generated on Dhan Web",
            )
            .into();
        }
    }
    state.mint_count += 1;
    let token = state.issue_token(config, TokenKind::SelfWeb);
    Reply::ok(token_body(config, &token))
}

/// Checks shared by every order write: rate limit, static IP, kill switch.
fn order_write_gate(shared: &Shared, state: &mut crate::state::State) -> Result<(), ApiError> {
    if !state.admit_order_write(shared.config.orders_per_second) {
        return Err(ApiError::rate_limited());
    }
    if !state.whitelisted_ip {
        return Err(ApiError::input("Invalid IP"));
    }
    if state.book.kill_switch_active(state.now()) {
        return Err(ApiError::order(
            400,
            "Kill Switch is active; trading is disabled for the day",
        ));
    }
    Ok(())
}

/// `POST /v2/orders`.
async fn place_order(shared: &Arc<Shared>, req: &Req) -> Reply {
    let before = shared.lock().faults.take(FaultPoint::OrderBeforeAccept);
    match before {
        Some(Fault::OrderDelay(d)) => tokio::time::sleep(d).await,
        Some(Fault::Order5xxBeforeAccept) => return ApiError::internal().into(),
        Some(Fault::OrderRateLimited) => return ApiError::rate_limited().into(),
        _ => {}
    }

    let (order_id, after) = {
        let mut state = shared.lock();
        if let Err(e) = order_write_gate(shared, &mut state) {
            return e.into();
        }
        let body: Value = match serde_json::from_slice(&req.body) {
            Ok(v) => v,
            Err(_) => return ApiError::input("Invalid JSON in request body").into(),
        };
        let spec = match validate_order(&body, &shared.config.client_id) {
            Ok(spec) => spec,
            Err(e) => return e.into(),
        };
        if !state.market_open && !spec.after_market_order {
            return ApiError::order(400, "Market is Closed! Want to place an offline order?")
                .into();
        }
        let now = state.now();
        let forced_reject = state.reject_next.pop_front();
        let order_id = state.book.place_with(spec, body, now, forced_reject);
        (order_id, state.faults.take(FaultPoint::OrderAfterAccept))
    };

    tokio::spawn(order_lifecycle(shared.clone(), order_id.clone()));

    match after {
        Some(Fault::Order5xxAfterAccept) => ApiError::internal().into(),
        Some(Fault::OrderDropAfterAccept) => Reply::Drop,
        _ => Reply::ok(json!({"orderId": order_id, "orderStatus": "TRANSIT"})),
    }
}

/// Moves an accepted order along in real time: TRANSIT → PENDING (or REJECTED) after
/// `fill_delay`, then an order that can trade (MARKET, or a LIMIT the price has crossed)
/// → TRADED after another `fill_delay`.
async fn order_lifecycle(shared: Arc<Shared>, order_id: String) {
    let delay = shared.config.fill_delay;
    tokio::time::sleep(delay).await;
    let next = {
        let mut state = shared.lock();
        let now = state.now();
        let market_open = state.market_open;
        state.book.leave_transit(
            &order_id,
            now,
            &shared.config.rms_reject_security_ids,
            market_open,
        )
    };
    if next == AfterTransit::Fill {
        tokio::time::sleep(delay).await;
        let mut state = shared.lock();
        let now = state.now();
        state.book.fill(&order_id, now);
    }
}
