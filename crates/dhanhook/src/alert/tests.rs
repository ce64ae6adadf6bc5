use serde_json::{Map, Value, json};

use super::*;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("test body must be an object"),
    }
}

fn parse(v: Value) -> Result<Signal, Vec<FieldProblem>> {
    parse_signal(&obj(v))
}

fn problems_for(v: Value) -> Vec<String> {
    parse(v)
        .expect_err("expected a rejection")
        .into_iter()
        .map(|p| p.field)
        .collect()
}

fn dhan_leg() -> Value {
    json!({"transactionType":"B","orderType":"MKT","quantity":"1","exchange":"NSE",
           "symbol":"RELIANCE","instrument":"EQ","productType":"I","sort_order":"1","price":"0"})
}

#[test]
fn dhan_format_as_dhans_ui_writes_it_is_accepted() {
    let s = parse(
        json!({"secret":"x","alertType":"multi_leg_order","order_legs":[dhan_leg()],
        "meta":{"interval":"5","time":"2026-01-05T04:00:00Z","timenow":"2026-01-05T04:00:07Z"}}),
    )
    .unwrap();
    assert_eq!(s.format, AlertFormat::Dhan);
    assert_eq!(s.timenow.as_deref(), Some("2026-01-05T04:00:07Z"));
    let leg = &s.legs[0];
    assert_eq!(
        (
            leg.side,
            leg.order_type,
            leg.product,
            leg.exchange,
            leg.quantity
        ),
        (
            Side::Buy,
            OrderType::Market,
            Product::Intraday,
            Exchange::Nse,
            1
        )
    );
    assert_eq!(leg.symbol, "RELIANCE");
    assert_eq!(
        leg.price, None,
        "price \"0\" on a market order means no price"
    );
}

#[test]
fn dhan_legs_run_in_sort_order_not_array_order() {
    let mut second = dhan_leg();
    second["symbol"] = json!("TCS");
    second["sort_order"] = json!("2");
    let mut first = dhan_leg();
    first["symbol"] = json!("INFY");
    first["sort_order"] = json!(1);
    let s = parse(json!({"alertType":"multi_leg_order","order_legs":[second, first]})).unwrap();
    let symbols: Vec<_> = s.legs.iter().map(|l| l.symbol.as_str()).collect();
    assert_eq!(symbols, ["INFY", "TCS"]);
}

#[test]
fn dhan_options_need_all_option_fields() {
    let leg = json!({"transactionType":"B","orderType":"MKT","quantity":"75","exchange":"NSE",
        "symbol":"NIFTY","instrument":"OPT","productType":"I","price":"0",
        "option_type":"CE","strike_price":"24000.0","expiry_date":"2026-01-27"});
    let s = parse(json!({"alertType":"single_order","order_legs":[&leg]})).unwrap();
    let opt = s.legs[0].option.clone().unwrap();
    assert_eq!((opt.kind, opt.strike), (OptionKind::Call, 24000.0));
    assert_eq!(opt.expiry.to_string(), "2026-01-27");

    let mut missing = leg;
    missing.as_object_mut().unwrap().remove("strike_price");
    assert_eq!(
        problems_for(json!({"alertType":"single_order","order_legs":[missing]})),
        ["order_legs[0].strike_price"]
    );
}

#[test]
fn cancel_order_is_a_cancel_and_exit_all_an_exit() {
    let s = parse(json!({"alertType":"cancel_order","order_legs":[dhan_leg()]})).unwrap();
    assert_eq!(s.intent, Intent::Cancel);
    let s = parse(
        json!({"alertType":"multi_leg_order","manage_position":"EXIT_ALL","order_legs":[dhan_leg()]}),
    )
    .unwrap();
    assert_eq!(s.intent, Intent::Exit);
    assert_eq!(
        s.legs[0].quantity, 0,
        "an exit's quantity is not used (nor checked for lots)"
    );
    let plain = parse(json!({"alertType":"multi_leg_order","order_legs":[dhan_leg()]})).unwrap();
    assert_eq!(plain.intent, Intent::Orders);
    assert_eq!(
        problems_for(
            json!({"alertType":"multi_leg_order","manage_position":"CLOSE","order_legs":[dhan_leg()]})
        ),
        ["manage_position"]
    );
    assert_eq!(
        problems_for(
            json!({"alertType":"cancel_order","manage_position":"EXIT_ALL","order_legs":[dhan_leg()]})
        ),
        ["manage_position"]
    );
    // Exiting a delivery position would sell holdings bought outside the strategy.
    let mut cnc = dhan_leg();
    cnc["productType"] = json!("C");
    assert_eq!(
        problems_for(
            json!({"alertType":"multi_leg_order","manage_position":"EXIT_ALL","order_legs":[cnc]})
        ),
        ["order_legs[0].productType"]
    );
}

fn flat(extra: Value) -> Value {
    let mut body = json!({"symbol":"NSE:RELIANCE","product":"intraday"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[test]
fn flat_positions_name_a_target_and_actions_exit_reverse_and_cancel() {
    let target = |position: &str, size: Value| {
        let s = parse(flat(json!({"position": position, "position_size": size}))).unwrap();
        assert_eq!(s.intent, Intent::Target);
        (s.legs[0].side, s.legs[0].quantity)
    };
    assert_eq!(target("long", json!("10")), (Side::Buy, 10));
    assert_eq!(target("short", json!(10)), (Side::Sell, 10));
    assert_eq!(target("flat", json!("0")), (Side::Sell, 0));
    // TradingView's order fields may come along: accepted, not used, and said so.
    let s = parse(flat(
        json!({"position":"long","position_size":"5","action":"buy","quantity":"3"}),
    ))
    .unwrap();
    assert_eq!((s.legs[0].quantity, s.warnings.len()), (5, 2));

    for (action, intent, qty) in [
        ("exit", Intent::Exit, 0),
        ("reverse", Intent::Reverse, 0),
        ("cancel", Intent::Cancel, 0),
    ] {
        let s = parse(flat(json!({ "action": action }))).unwrap();
        assert_eq!((s.intent, s.legs[0].quantity), (intent, qty), "{action}");
    }
    let s = parse(flat(json!({"action":"reverse","quantity":"7"}))).unwrap();
    assert_eq!(s.legs[0].quantity, 7);
}

#[test]
fn flat_position_mistakes_are_named() {
    assert_eq!(
        problems_for(flat(json!({"position":"long"}))),
        ["position_size"]
    );
    assert_eq!(
        problems_for(flat(json!({"position":"long","position_size":"0"}))),
        ["position_size"]
    );
    assert_eq!(
        problems_for(flat(json!({"position":"flat","position_size":"3"}))),
        ["position_size"]
    );
    assert_eq!(
        problems_for(flat(json!({"position":"sideways","position_size":"3"}))),
        ["position"]
    );
    assert_eq!(
        problems_for(flat(
            json!({"position":"long","position_size":"3","action":"exit"})
        )),
        ["action"]
    );
    assert_eq!(
        problems_for(flat(
            json!({"action":"buy","quantity":"3","position_size":"3"})
        )),
        ["position_size"]
    );
    let mut cnc = flat(json!({"position":"long","position_size":"3"}));
    cnc["product"] = json!("delivery");
    assert_eq!(problems_for(cnc), ["product"]);
    // A plain order still needs its quantity.
    assert_eq!(problems_for(flat(json!({"action":"buy"}))), ["quantity"]);
}

#[test]
fn single_order_with_two_legs_places_both_with_a_warning_as_the_upstream_did() {
    let s =
        parse(json!({"alertType":"single_order","order_legs":[dhan_leg(), dhan_leg()]})).unwrap();
    assert_eq!(s.legs.len(), 2);
    assert_eq!(warning_fields(&s), ["order_legs"]);
}

fn warning_fields(s: &Signal) -> Vec<&str> {
    s.warnings.iter().map(|w| w.field.as_str()).collect()
}

/// The upstream's schema requires `meta` in every leg; its README puts it at the top level.
#[test]
fn meta_may_sit_in_each_leg_at_the_top_or_both() {
    let mut leg = dhan_leg();
    leg["meta"] =
        json!({"interval":"15","time":"2026-12-01T04:15:00Z","timenow":"2026-12-01T04:30:02Z"});
    let per_leg =
        parse(json!({"alertType":"multi_leg_order","order_legs":[leg.clone(), leg.clone()]}))
            .unwrap();
    assert_eq!(per_leg.timenow.as_deref(), Some("2026-12-01T04:30:02Z"));
    assert_eq!(per_leg.interval.as_deref(), Some("15"));
    assert_eq!(per_leg.bar_time.as_deref(), Some("2026-12-01T04:15:00Z"));
    assert!(per_leg.warnings.is_empty(), "{:?}", per_leg.warnings);

    let both = parse(json!({"alertType":"multi_leg_order","order_legs":[leg],
        "meta":{"interval":"15","time":"x","timenow":"top"}}))
    .unwrap();
    assert_eq!(
        both.timenow.as_deref(),
        Some("top"),
        "the top level speaks for the alert"
    );

    let mut bad = dhan_leg();
    bad["meta"] = json!("15m");
    assert_eq!(
        problems_for(json!({"alertType":"single_order","order_legs":[bad]})),
        ["order_legs[0].meta"]
    );
}

#[test]
fn every_instrument_name_the_upstream_documents_is_read() {
    let option_leg = |instrument: &str| {
        json!({"transactionType":"B","orderType":"MKT","quantity":"65","exchange":"NFO",
            "symbol":"NIFTY","instrument":instrument,"productType":"M",
            "option_type":"PE","strike_price":"24000","expiry_date":"2026-12-08"})
    };
    for name in ["OPT", "OPTIDX", "OPTSTK", "OPTFUT", "opt", "PE"] {
        let s = parse(json!({"alertType":"single_order","order_legs":[option_leg(name)]}))
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(s.legs[0].instrument, Some(Instrument::Option), "{name}");
        assert_eq!(s.legs[0].option.as_ref().unwrap().kind, OptionKind::Put);
    }
    // CE/PE stand for the option type; a disagreeing option_type is refused.
    let mut ce = option_leg("CE");
    ce.as_object_mut().unwrap().remove("option_type");
    let s = parse(json!({"alertType":"single_order","order_legs":[ce]})).unwrap();
    assert_eq!(s.legs[0].option.as_ref().unwrap().kind, OptionKind::Call);
    let err =
        parse(json!({"alertType":"single_order","order_legs":[option_leg("CE")]})).unwrap_err();
    assert_eq!(err[0].field, "order_legs[0].option_type");
    assert!(
        err[0].problem.contains("disagrees with instrument CE"),
        "{err:?}"
    );

    for name in ["FUT", "FUTIDX", "FUTSTK", "FUTCOM"] {
        let leg = json!({"transactionType":"S","orderType":"MKT","quantity":"65","exchange":"NSE",
            "symbol":"NIFTY","instrument":name,"productType":"M"});
        let s = parse(json!({"alertType":"single_order","order_legs":[leg]})).unwrap();
        assert_eq!(s.legs[0].instrument, Some(Instrument::Future), "{name}");
    }
    for name in ["EQ", "EQUITY"] {
        let mut leg = dhan_leg();
        leg["instrument"] = json!(name);
        let s = parse(json!({"alertType":"single_order","order_legs":[leg]})).unwrap();
        assert_eq!(s.legs[0].instrument, Some(Instrument::Equity), "{name}");
    }
}

/// A full Dhan trading symbol names its contract; `instrument` and the option fields may come
/// with it but must agree, and the refusal names the difference.
#[test]
fn full_trading_symbols_go_with_or_without_instrument_and_must_agree() {
    let leg = |symbol: &str, extra: Value| {
        let mut l = json!({"transactionType":"B","orderType":"MKT","quantity":"65",
            "exchange":"NSE_FNO","symbol":symbol,"productType":"M"});
        for (k, v) in extra.as_object().unwrap() {
            l[k] = v.clone();
        }
        json!({"alertType":"single_order","order_legs":[l]})
    };
    for (symbol, extra) in [
        ("NIFTY-Dec2026-FUT", json!({})),
        ("NIFTY-Dec2026-FUT", json!({"instrument":"FUT"})),
        (
            "NIFTY-Dec2026-FUT",
            json!({"instrument":"FUTIDX","expiry_date":"2026-12-29"}),
        ),
        ("CRUDEOIL-17Dec2026-FUT", json!({"instrument":"FUTCOM"})),
        ("NIFTY-Dec2026-24000-CE", json!({"instrument":"OPTIDX"})),
        ("NIFTY-Dec2026-24000-CE", json!({"instrument":"CE"})),
        (
            "NIFTY-Dec2026-24000-CE",
            json!({"instrument":"OPT","option_type":"CE",
            "strike_price":"24000","expiry_date":"2026-12-08"}),
        ),
    ] {
        let s =
            parse(leg(symbol, extra.clone())).unwrap_or_else(|e| panic!("{symbol} {extra}: {e:?}"));
        assert_eq!(s.legs[0].symbol, symbol.to_ascii_uppercase());
    }
    let dated = parse(leg(
        "NIFTY-Dec2026-24000-CE",
        json!({"instrument":"OPT","expiry_date":"2026-12-08"}),
    ))
    .unwrap();
    let opt = dated.legs[0].option.clone().unwrap();
    assert_eq!(
        (opt.kind, opt.strike, opt.expiry.to_string()),
        (OptionKind::Call, 24000.0, "2026-12-08".to_owned())
    );

    for (symbol, extra, field, says) in [
        (
            "NIFTY-Dec2026-FUT",
            json!({"instrument":"OPT"}),
            "symbol",
            "is a future, but instrument says an option",
        ),
        (
            "NIFTY-Dec2026-24000-CE",
            json!({"instrument":"FUT"}),
            "symbol",
            "is an option, but instrument says a future",
        ),
        (
            "NIFTY-Dec2026-24000-CE",
            json!({"instrument":"PE"}),
            "symbol",
            "is a CE option, but the alert says PE",
        ),
        (
            "NIFTY-Dec2026-24000-CE",
            json!({"instrument":"OPT","strike_price":"24500"}),
            "strike_price",
            "disagrees with the symbol's strike 24000",
        ),
        (
            "NIFTY-Dec2026-24000-CE",
            json!({"instrument":"OPT","expiry_date":"2027-01-26"}),
            "expiry_date",
            "is not in Dec 2026",
        ),
        (
            "NIFTY-Dec2026-FUT",
            json!({"instrument":"FUT","expiry_date":"2027-01-26"}),
            "expiry_date",
            "is not in Dec 2026",
        ),
        (
            "NIFTY-Dec2026-FUT",
            json!({"instrument":"EQ"}),
            "instrument",
            "is a derivative contract",
        ),
    ] {
        let err = parse(leg(symbol, extra.clone())).unwrap_err();
        assert_eq!(
            err[0].field,
            format!("order_legs[0].{field}"),
            "{symbol} {extra}: {err:?}"
        );
        assert!(err[0].problem.contains(says), "{symbol} {extra}: {err:?}");
    }
}

/// Keys the upstream ignored are ignored here too, and listed; the ones it would have
/// misplaced as plain orders are refused.
#[test]
fn fields_the_upstream_ignored_are_warnings_not_refusals() {
    let mut leg = dhan_leg();
    leg["orderType"] = json!("LMT");
    leg["price"] = json!("2500");
    leg["triggerPrice"] = json!("2490");
    leg["disclosedQuantity"] = json!("0");
    leg["meta"] = json!({"interval":"5","time":"t","timenow":"n","ticker":"RELIANCE"});
    let s = parse(json!({"alertType":"order","order_legs":[leg],"comment":"from my template"}))
        .unwrap();
    assert_eq!(
        warning_fields(&s),
        [
            "comment",
            "alertType",
            "order_legs[0].meta.ticker",
            "order_legs[0].disclosedQuantity",
            "order_legs[0].triggerPrice"
        ]
    );
    assert_eq!(s.legs[0].trigger_price, None, "ignored, not sent");
    assert!(
        s.warnings[4].problem.contains("ignored for LIMIT"),
        "{:?}",
        s.warnings
    );

    let mut exit = dhan_leg();
    exit["manage_position"] = json!("EXIT_ALL");
    let err = parse(json!({"alertType":"multi_leg_order","order_legs":[exit]})).unwrap_err();
    assert_eq!(err[0].field, "order_legs[0].manage_position");
    assert!(err[0].problem.contains("nothing was placed"), "{err:?}");
}

#[test]
fn dhan_leg_problems_name_the_leg_and_field() {
    let mut bad = dhan_leg();
    bad["transactionType"] = json!("BUYY");
    bad["orderType"] = json!("LMT");
    bad["quantity"] = json!("-5");
    let fields =
        problems_for(json!({"alertType":"multi_leg_order","order_legs":[dhan_leg(), bad]}));
    assert_eq!(
        fields,
        [
            "order_legs[1].transactionType",
            "order_legs[1].quantity",
            "order_legs[1].price"
        ]
    );
}

#[test]
fn flat_format_accepts_strings_or_numbers_alike() {
    let a = parse(
        json!({"symbol":"NSE:RELIANCE","action":"BUY","quantity":"10","product":"delivery",
        "order_type":"limit","price":"2450.5"}),
    )
    .unwrap();
    let b = parse(
        json!({"symbol":"RELIANCE","exchange":"nse","action":"buy","quantity":10,
        "product":"CNC","order_type":"LMT","price":2450.5}),
    )
    .unwrap();
    assert_eq!(a, b);
    let leg = &a.legs[0];
    assert_eq!(
        (leg.exchange, leg.side, leg.quantity, leg.product),
        (Exchange::Nse, Side::Buy, 10, Product::Delivery)
    );
    assert_eq!(
        (leg.order_type, leg.price),
        (OrderType::Limit, Some(2450.5))
    );
    assert_eq!(leg.validity, Validity::Day);
}

#[test]
fn flat_quantity_must_be_a_positive_whole_number() {
    for (qty, ok) in [
        (json!("1.5"), false),
        (json!("-5"), false),
        (json!("0"), false),
        (json!(""), false),
        (json!(1.5), false),
        (json!("abc"), false),
        (json!("NaN"), false),
        (json!(true), false),
        (json!("100000000"), false),
        (json!("1e3"), false),
        (json!("+5"), false),
        (json!("0x10"), false),
        (json!("5."), true),
        (json!("10.00"), true),
        (json!("2.0"), true),
        (json!(" 7 "), true),
        (json!(3), true),
    ] {
        let result = parse(
            json!({"symbol":"NSE:SBIN","action":"buy","quantity":qty.clone(),"product":"intraday"}),
        );
        match (ok, result) {
            (true, Ok(_)) => {}
            (false, Err(p)) => assert_eq!(p[0].field, "quantity", "quantity {qty}"),
            (ok, r) => panic!("quantity {qty}: expected ok={ok}, got {r:?}"),
        }
    }
}

#[test]
fn order_types_demand_the_prices_they_need() {
    let base = |extra: Value| {
        let mut v = json!({"symbol":"NSE:SBIN","action":"sell","quantity":1,"product":"intraday"});
        for (k, val) in extra.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    };
    assert_eq!(problems_for(base(json!({"order_type":"limit"}))), ["price"]);
    assert_eq!(
        problems_for(base(json!({"order_type":"limit","price":"0"}))),
        ["price"]
    );
    assert_eq!(
        problems_for(base(json!({"order_type":"sl","price":"10"}))),
        ["trigger_price"]
    );
    assert_eq!(
        problems_for(base(json!({"order_type":"sl-m"}))),
        ["trigger_price"]
    );
    assert_eq!(
        problems_for(base(json!({"order_type":"market","trigger_price":"5"}))),
        ["trigger_price"]
    );
    assert_eq!(problems_for(base(json!({"price":"-1"}))), ["price"]);
    assert_eq!(problems_for(base(json!({"price":"inf"}))), ["price"]);
    let sl = parse(base(json!({"order_type":"SL-M","trigger_price":"99.5"}))).unwrap();
    assert_eq!(sl.legs[0].trigger_price, Some(99.5));
}

#[test]
fn flat_exchange_is_required_and_must_agree_with_the_prefix() {
    assert_eq!(
        problems_for(json!({"symbol":"RELIANCE","action":"buy","quantity":1,"product":"intraday"})),
        ["exchange"]
    );
    assert_eq!(
        problems_for(
            json!({"symbol":"NSE:RELIANCE","exchange":"BSE","action":"buy","quantity":1,"product":"intraday"})
        ),
        ["exchange"]
    );
    let s =
        parse(json!({"symbol":"NSE_DLY:NIFTY1!","action":"buy","quantity":1,"product":"margin"}))
            .unwrap();
    assert_eq!(
        (s.legs[0].exchange, s.legs[0].symbol.as_str()),
        (Exchange::Nse, "NIFTY1!")
    );
}

#[test]
fn unknown_fields_are_reported_so_typos_do_not_change_orders_silently() {
    assert_eq!(
        problems_for(
            json!({"symbol":"NSE:SBIN","action":"buy","quantity":1,"product":"intraday","trigger_prce":"5"})
        ),
        ["trigger_prce"]
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let fields = problems_for(json!({"symbol":"NSE:SB IN","action":"hold","quantity":"1.5"}));
    assert_eq!(fields, ["symbol", "action", "quantity", "product"]);
}

#[test]
fn flat_amo_fields_are_read() {
    let s = parse(
        json!({"symbol":"BSE:TCS","action":"buy","quantity":1,"product":"delivery",
        "amo":"true","amo_time":"open_30"}),
    )
    .unwrap();
    assert!(s.legs[0].amo);
    assert_eq!(s.legs[0].amo_time, Some(AmoTime::Open30));
}
