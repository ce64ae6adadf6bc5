//! Alerts written for the upstream Python service, as its users send them today (per-leg
//! `meta`, top-level `meta`, `CE`/`PE`, every `instrument` name, full Dhan trading symbols,
//! `amoTime`, `strategy`, numbers as text): each is placed as written unless placing it would
//! be unsafe, and then the refusal names the difference. Run in paper mode and against
//! dhan-sim, where the order Dhan receives is checked field by field.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::helpers::{SECRET, TestApp, spawn_app, spawn_app_with};

/// What a case must produce.
enum Expect {
    /// Placed; per leg in execution order: (trading symbol, security id, units, lots,
    /// product); and the fields named in `warnings`.
    Placed(
        Vec<(&'static str, &'static str, i64, i64, &'static str)>,
        Vec<&'static str>,
    ),
    /// Refused with 422: the field named and a phrase of its problem.
    Refused(&'static str, &'static str),
}

struct Case {
    name: &'static str,
    body: Value,
    expect: Expect,
}

fn meta(i: usize) -> Value {
    json!({"interval": "5", "time": "2026-12-01T04:25:00Z",
           "timenow": format!("2026-12-01T04:30:{i:02}Z")})
}

/// A leg as the upstream's schema requires it: every field text, `meta` inside.
fn leg(i: usize, fields: Value) -> Value {
    let mut l = json!({"transactionType": "B", "orderType": "MKT", "quantity": "1",
        "exchange": "NSE", "productType": "I", "sort_order": "1", "price": "0",
        "amoTime": "PRE_OPEN", "meta": meta(i)});
    for (k, v) in fields.as_object().unwrap() {
        l[k] = v.clone();
    }
    l
}

fn single(i: usize, fields: Value) -> Value {
    json!({"alertType": "single_order", "order_legs": [leg(i, fields)]})
}

fn cases() -> Vec<Case> {
    use Expect::{Placed, Refused};
    let mut n = 0;
    let mut i = move || {
        n += 1;
        n
    };
    vec![
        Case {
            name: "the upstream README's equity order, meta in the leg",
            body: single(
                i(),
                json!({"symbol": "RELIANCE", "instrument": "EQ", "productType": "C"}),
            ),
            expect: Placed(vec![("RELIANCE", "2885", 1, 1, "CNC")], vec![]),
        },
        Case {
            name: "two legs with meta in each and at the top, strategy, sort_order",
            body: {
                let i = i();
                json!({"alertType": "multi_leg_order", "strategy": "pairs-v2", "meta": meta(i),
                    "order_legs": [
                        // A BUY: a CNC SELL needs holdings (see positions.rs for that check).
                        leg(i, json!({"transactionType": "B", "orderType": "LMT", "quantity": "5",
                            "symbol": "TCS", "instrument": "EQ", "productType": "C",
                            "sort_order": "2", "price": "4100.25", "amoTime": "OPEN"})),
                        leg(i, json!({"quantity": "10", "symbol": "INFY", "instrument": "EQ",
                            "amoTime": "OPEN_30"}))]})
            },
            expect: Placed(
                vec![
                    ("INFY", "1594", 10, 10, "INTRADAY"),
                    ("TCS", "11536", 5, 5, "CNC"),
                ],
                vec![],
            ),
        },
        Case {
            name: "Dhan's UI option leg: OPT with option_type, strike, expiry",
            body: single(
                i(),
                json!({"symbol": "NIFTY", "exchange": "NFO", "instrument": "OPT",
                "quantity": "65", "productType": "M", "option_type": "CE",
                "strike_price": "24000.0", "expiry_date": "2026-12-08"}),
            ),
            expect: Placed(
                vec![("NIFTY-Dec2026-24000-CE", "71301", 65, 1, "MARGIN")],
                vec![],
            ),
        },
        Case {
            name: "instrument PE stands for the option type",
            body: single(
                i(),
                json!({"symbol": "NIFTY", "exchange": "NSE_FNO", "instrument": "PE",
                "quantity": "65", "strike_price": "24000", "expiry_date": "2026-12-01"}),
            ),
            expect: Placed(
                vec![("NIFTY-Dec2026-24000-PE", "71246", 65, 1, "INTRADAY")],
                vec![],
            ),
        },
        Case {
            name: "instrument CE with a full trading symbol",
            body: single(
                i(),
                json!({"symbol": "NIFTY-Dec2027-25000-CE", "exchange": "NSE_FNO",
                "instrument": "CE", "quantity": "130", "productType": "M"}),
            ),
            expect: Placed(
                vec![("NIFTY-Dec2027-25000-CE", "87001", 130, 2, "MARGIN")],
                vec![],
            ),
        },
        Case {
            name: "OPTIDX with a weekly's trading symbol and its expiry_date",
            body: single(
                i(),
                json!({"symbol": "NIFTY-Dec2026-24000-CE", "exchange": "NSE",
                "instrument": "OPTIDX", "quantity": "65", "expiry_date": "2026-12-08"}),
            ),
            expect: Placed(
                vec![("NIFTY-Dec2026-24000-CE", "71301", 65, 1, "INTRADAY")],
                vec![],
            ),
        },
        Case {
            name: "OPTSTK with a full trading symbol",
            body: single(
                i(),
                json!({"symbol": "RELIANCE-Dec2026-1300-CE", "exchange": "NSE",
                "instrument": "OPTSTK", "quantity": "500", "productType": "M"}),
            ),
            expect: Placed(
                vec![("RELIANCE-Dec2026-1300-CE", "72510", 500, 1, "MARGIN")],
                vec![],
            ),
        },
        Case {
            name: "FUTIDX with a full trading symbol",
            body: single(
                i(),
                json!({"symbol": "NIFTY-Dec2026-FUT", "exchange": "NSE",
                "instrument": "FUTIDX", "quantity": "65", "productType": "M"}),
            ),
            expect: Placed(
                vec![("NIFTY-Dec2026-FUT", "62011", 65, 1, "MARGIN")],
                vec![],
            ),
        },
        Case {
            name: "FUTIDX by underlying and expiry_date",
            body: single(
                i(),
                json!({"symbol": "NIFTY", "exchange": "NFO", "instrument": "FUTIDX",
                "quantity": "130", "productType": "M", "expiry_date": "2027-01-26"}),
            ),
            expect: Placed(
                vec![("NIFTY-Jan2027-FUT", "62650", 130, 2, "MARGIN")],
                vec![],
            ),
        },
        Case {
            name: "FUTSTK by underlying: the nearest expiry",
            body: single(
                i(),
                json!({"symbol": "RELIANCE", "exchange": "NFO",
                "instrument": "FUTSTK", "quantity": "500", "productType": "M"}),
            ),
            expect: Placed(
                vec![("RELIANCE-Dec2026-FUT", "62090", 500, 1, "MARGIN")],
                vec![],
            ),
        },
        Case {
            name: "FUTCOM with MCX's dated trading symbol",
            body: single(
                i(),
                json!({"symbol": "CRUDEOIL-17Dec2026-FUT", "exchange": "MCX",
                "instrument": "FUTCOM", "quantity": "1", "productType": "M"}),
            ),
            expect: Placed(
                vec![("CRUDEOIL-17Dec2026-FUT", "569950", 1, 1, "MARGIN")],
                vec![],
            ),
        },
        Case {
            name: "OPTFUT with MCX's dated trading symbol",
            body: single(
                i(),
                json!({"symbol": "CRUDEOIL-16Dec2026-5500-CE", "exchange": "MCX",
                "instrument": "OPTFUT", "quantity": "100", "productType": "M"}),
            ),
            expect: Placed(
                vec![("CRUDEOIL-16Dec2026-5500-CE", "570101", 100, 1, "MARGIN")],
                vec![],
            ),
        },
        Case {
            name: "a full trading symbol without instrument",
            body: single(
                i(),
                json!({"symbol": "NIFTY-Jan2027-FUT", "exchange": "NFO",
                "quantity": "65", "productType": "M"}),
            ),
            expect: Placed(
                vec![("NIFTY-Jan2027-FUT", "62650", 65, 1, "MARGIN")],
                vec![],
            ),
        },
        Case {
            name: "fields the upstream ignored: triggerPrice on LMT, an unknown key",
            body: single(
                i(),
                json!({"symbol": "SBIN", "instrument": "EQ", "orderType": "LMT",
                "price": "812.5", "triggerPrice": "810", "remarks": "from my template"}),
            ),
            expect: Placed(
                vec![("SBIN", "3045", 1, 1, "INTRADAY")],
                vec!["order_legs[0].remarks", "order_legs[0].triggerPrice"],
            ),
        },
        Case {
            name: "a stop-loss leg takes its triggerPrice (the upstream always sent 0)",
            body: single(
                i(),
                json!({"symbol": "HDFCBANK", "instrument": "EQ",
                "transactionType": "S", "orderType": "SL", "price": "1700", "triggerPrice": "1702",
                "productType": "I"}),
            ),
            expect: Placed(vec![("HDFCBANK", "1333", 1, 1, "INTRADAY")], vec![]),
        },
        Case {
            name: "10 units of NIFTY futures: not a whole number of lots",
            body: single(
                i(),
                json!({"symbol": "NIFTY", "exchange": "NFO", "instrument": "FUT",
                "quantity": "10", "productType": "M"}),
            ),
            expect: Refused(
                "order_legs[0].quantity",
                "nearest valid quantities are 65 (1 lot) and 130 (2 lots)",
            ),
        },
        Case {
            name: "a month's symbol naming two live weeklies, no expiry_date",
            body: single(
                i(),
                json!({"symbol": "NIFTY-Dec2026-24000-CE", "exchange": "NFO",
                "instrument": "OPT", "quantity": "65"}),
            ),
            expect: Refused("order_legs[0].symbol", "names 2 live contracts"),
        },
        Case {
            name: "manage_position inside a leg is not placed as a plain order",
            body: single(
                i(),
                json!({"symbol": "RELIANCE", "instrument": "EQ",
                "manage_position": "EXIT_ALL"}),
            ),
            expect: Refused("order_legs[0].manage_position", "belongs at the top level"),
        },
        Case {
            name: "manage_position other than EXIT_ALL is not guessed at",
            body: {
                let mut b = single(i(), json!({"symbol": "RELIANCE", "instrument": "EQ"}));
                b["manage_position"] = json!("CLOSE_SOME");
                b
            },
            expect: Refused("manage_position", "use EXIT_ALL"),
        },
        Case {
            name: "quantity 1.5 (the upstream crashed on it after validating)",
            body: single(
                i(),
                json!({"symbol": "RELIANCE", "instrument": "EQ",
                "quantity": "1.5"}),
            ),
            expect: Refused("order_legs[0].quantity", "positive whole number"),
        },
    ]
}

/// Posts every case and checks each answer; returns the placed cases' bodies with their
/// answers, in order.
async fn run_cases(app: &TestApp) -> Vec<(&'static str, Value)> {
    let mut placed = Vec::new();
    for case in cases() {
        let mut body = case.body.clone();
        body["secret"] = json!(SECRET);
        let resp = app.post_webhook(&body).await;
        let status = resp.status().as_u16();
        let answer: Value = resp.json().await.unwrap();
        match case.expect {
            Expect::Placed(legs, warnings) => {
                assert_eq!(status, 200, "{}: {answer}", case.name);
                assert_eq!(answer["status"], "placed", "{}: {answer}", case.name);
                let got: Vec<(String, String, i64, i64, String)> = answer["legs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|l| {
                        (
                            l["trading_symbol"].as_str().unwrap().to_owned(),
                            l["security_id"].as_str().unwrap().to_owned(),
                            l["quantity"].as_i64().unwrap(),
                            l["lots"].as_i64().unwrap(),
                            l["product"].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                let want: Vec<(String, String, i64, i64, String)> = legs
                    .iter()
                    .map(|(t, id, q, lots, p)| {
                        (
                            (*t).to_owned(),
                            (*id).to_owned(),
                            *q,
                            *lots,
                            (*p).to_owned(),
                        )
                    })
                    .collect();
                assert_eq!(got, want, "{}", case.name);
                let warned: Vec<&str> = answer["warnings"]
                    .as_array()
                    .map(|w| w.iter().map(|w| w["field"].as_str().unwrap()).collect())
                    .unwrap_or_default();
                assert_eq!(warned, warnings, "{}: {answer}", case.name);
                placed.push((case.name, answer));
            }
            Expect::Refused(field, phrase) => {
                assert_eq!(status, 422, "{}: {answer}", case.name);
                let problem = answer["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| e["field"] == field)
                    .unwrap_or_else(|| panic!("{}: no problem for {field}: {answer}", case.name));
                assert!(
                    problem["problem"].as_str().unwrap().contains(phrase),
                    "{}: {answer}",
                    case.name
                );
            }
        }
    }
    placed
}

#[tokio::test]
async fn upstream_alerts_are_placed_as_written_in_paper_mode() {
    let app = spawn_app().await;
    let placed = run_cases(&app).await;
    let refused = cases().len() - placed.len();
    // Every refused case left nothing in the journal: only the placed legs are there.
    let legs: usize = placed
        .iter()
        .map(|(_, a)| a["legs"].as_array().unwrap().len())
        .sum();
    assert_eq!(app.journal_orders().await.len(), legs);
    assert!(refused >= 5);
    app.stop().await;
}

#[tokio::test]
async fn upstream_alerts_reach_dhan_as_the_orders_they_mean() {
    // More than ten orders go out within a second here, and Dhan's 10/s would answer the
    // later ones 202 "queued behind the rate limit" (tested in `faults`): this test is about
    // what each alert becomes, so both limits are lifted.
    let live = crate::live::start(
        crate::live::sim_with(dhan_sim::SimConfig {
            orders_per_second: 1000,
            ..dhan_sim::SimConfig::default()
        })
        .await,
        std::sync::Arc::new(tempfile::tempdir().unwrap()),
        &[("ORDER_RATE_LIMITS", "1000/s")],
    )
    .await;
    let placed = run_cases(&live.app).await;
    let orders = live.sim.orders();
    let legs: Vec<&Value> = placed
        .iter()
        .flat_map(|(_, a)| a["legs"].as_array().unwrap())
        .collect();
    assert_eq!(orders.len(), legs.len(), "one order at Dhan per placed leg");
    for leg in legs {
        assert_eq!(leg["status"], "ACCEPTED", "{leg}");
        let order = orders
            .iter()
            .find(|o| o.correlation_id.as_deref() == leg["correlation_id"].as_str())
            .unwrap_or_else(|| panic!("no order at Dhan for {leg}"));
        let body = &order.body;
        assert_eq!(body["securityId"], leg["security_id"], "{body}");
        assert_eq!(body["quantity"], leg["quantity"], "{body}");
        assert_eq!(body["productType"], leg["product"], "{body}");
        assert_eq!(body["transactionType"], leg["side"], "{body}");
        assert_eq!(body["orderType"], leg["order_type"], "{body}");
    }
    // The stop-loss leg carries its trigger; the limit leg's ignored trigger is not sent.
    let by_security = |id: &str| orders.iter().find(|o| o.body["securityId"] == id).unwrap();
    assert_eq!(by_security("1333").body["triggerPrice"], 1702.0);
    assert_eq!(by_security("1333").body["orderType"], "STOP_LOSS");
    assert!(by_security("3045").body.get("triggerPrice").is_none());
    assert_eq!(by_security("3045").body["price"], 812.5);
}

/// The acceptance's own case, in the flat format: 10 units of NIFTY1! with lot 65.
#[tokio::test]
async fn ten_nifty1_units_are_refused_naming_the_lot_and_the_nearest_quantities() {
    let app = spawn_app().await;
    let resp = app
        .post_webhook(
            &json!({"secret": SECRET, "symbol": "NSE:NIFTY1!", "action": "buy",
            "quantity": "10", "product": "margin"}),
        )
        .await;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "quantity", "{body}");
    let problem = body["errors"][0]["problem"].as_str().unwrap();
    assert!(
        problem.contains("lot size 65") && problem.contains("65") && problem.contains("130"),
        "{body}"
    );
    assert!(app.journal_orders().await.is_empty(), "nothing journaled");

    // With FNO_QUANTITY=lots the same alert means 10 lots: 650 units.
    let dir = app.stop().await;
    let lots = spawn_app_with(Arc::clone(&dir), &[("FNO_QUANTITY", "lots")]).await;
    let resp = lots
        .post_webhook(
            &json!({"secret": SECRET, "symbol": "NSE:NIFTY1!", "action": "buy",
            "quantity": "10", "product": "margin", "timenow": "2026-12-01T04:29:00Z"}),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        (
            body["legs"][0]["quantity"].as_i64(),
            body["legs"][0]["lots"].as_i64()
        ),
        (Some(650), Some(10))
    );
    lots.stop().await;
}

/// `EQ_PRODUCT=cnc` keeps the upstream's habit of placing every EQ leg as CNC, and says so.
#[tokio::test]
async fn eq_product_cnc_places_equity_legs_as_delivery_with_a_warning() {
    let app = spawn_app_with(
        Arc::new(tempfile::tempdir().unwrap()),
        &[("EQ_PRODUCT", "cnc")],
    )
    .await;
    let mut body = single(
        1,
        json!({"symbol": "RELIANCE", "instrument": "EQ", "productType": "I"}),
    );
    body["secret"] = json!(SECRET);
    let resp = app.post_webhook(&body).await;
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(answer["legs"][0]["product"], "CNC");
    assert_eq!(answer["warnings"][0]["field"], "order_legs[0].productType");
    assert_eq!(app.journal_orders().await[0].product.as_str(), "CNC");
    app.stop().await;
}

/// At 18:00 the upstream sent every AMO as PRE_OPEN and its pinned SDK refused that, so no AMO
/// ever reached Dhan. The leg's own `amoTime` now reaches Dhan with the AMO flag.
#[tokio::test]
async fn an_upstream_alert_in_the_evening_is_an_amo_with_the_legs_amo_time() {
    let at = crate::helpers::ist_time(2026, 12, 1, 18, 0);
    let sim = crate::live::sim_at(dhan_sim::SimConfig::default(), at).await;
    sim.set_market_open(false);
    let t = crate::live::start_at(sim, Arc::new(tempfile::tempdir().unwrap()), &[], at).await;
    let mut body = single(
        1,
        json!({"symbol": "RELIANCE", "instrument": "EQ",
        "productType": "C", "amoTime": "OPEN_60",
        "meta": {"interval": "5", "time": "2026-12-01T12:25:00Z", "timenow": "2026-12-01T12:30:00Z"}}),
    );
    body["secret"] = json!(SECRET);
    let answer: Value = t.app.post_webhook(&body).await.json().await.unwrap();
    assert_eq!(
        answer["route"],
        json!({"route": "amo", "amo_time": "OPEN_60"}),
        "{answer}"
    );
    assert_eq!(answer["legs"][0]["status"], "ACCEPTED", "{answer}");
    let orders = t.sim.orders();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].body["afterMarketOrder"], true);
    assert_eq!(orders[0].body["amoTime"], "OPEN_60");
}
