use chrono::NaiveDate;
use serde_json::{Value, json};

use super::{master, *};
use crate::alert::parse_signal;

fn sample() -> Instruments {
    master::parse(master::SAMPLE.as_bytes(), "sample").unwrap()
}

fn leg(v: Value) -> LegOrder {
    parse_signal(v.as_object().unwrap()).unwrap().legs.remove(0)
}

fn flat(symbol: &str, qty: u32) -> LegOrder {
    leg(json!({"symbol": symbol, "action": "buy", "quantity": qty, "product": "margin"}))
}

/// Tuesday 2026-12-01: the December contracts are the nearest.
fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
}

fn resolve(l: &LegOrder) -> Result<Resolved, String> {
    sample()
        .resolve(l, today(), QuantityUnit::Lots)
        .map_err(|e| e.message)
}

#[test]
fn equities_resolve_on_both_exchanges_with_nse_eq_series_first() {
    let r = resolve(&flat("NSE:RELIANCE", 10)).unwrap();
    assert_eq!(
        (
            r.instrument.security_id.as_str(),
            r.instrument.exchange_segment,
            r.units
        ),
        ("2885", "NSE_EQ", 10)
    );
    let b = resolve(&flat("BSE:RELIANCE", 3)).unwrap();
    assert_eq!(
        (
            b.instrument.security_id.as_str(),
            b.instrument.exchange_segment
        ),
        ("500325", "BSE_EQ")
    );
    let bhel = resolve(&flat("NSE:BHEL", 1)).unwrap();
    assert_eq!(bhel.instrument.security_id, "438", "EQ series, not BE");
    let with_field = resolve(&leg(
        json!({"symbol":"TCS","exchange":"NSE_EQ","action":"sell","quantity":2,"product":"C"}),
    ))
    .unwrap();
    assert_eq!(with_field.instrument.security_id, "11536");
}

#[test]
fn tradingview_underscores_stand_for_ampersand_and_dash() {
    assert_eq!(
        resolve(&flat("NSE:M_M", 1))
            .unwrap()
            .instrument
            .trading_symbol,
        "M&M"
    );
    assert_eq!(
        resolve(&flat("NSE:BAJAJ_AUTO", 1))
            .unwrap()
            .instrument
            .trading_symbol,
        "BAJAJ-AUTO"
    );
}

#[test]
fn continuous_futures_pick_the_nearest_and_next_expiry_on_or_after_today() {
    let n1 = resolve(&flat("NSE:NIFTY1!", 2)).unwrap();
    assert_eq!(
        n1.instrument.trading_symbol, "NIFTY-Dec2026-FUT",
        "November's contract has expired"
    );
    assert_eq!(
        (
            n1.instrument.exchange_segment,
            n1.instrument.lot_size,
            n1.units
        ),
        ("NSE_FNO", 65, 130)
    );
    assert_eq!(
        resolve(&flat("NSE:NIFTY2!", 1))
            .unwrap()
            .instrument
            .trading_symbol,
        "NIFTY-Jan2027-FUT"
    );
    assert_eq!(
        resolve(&flat("NSE:BANKNIFTY1!", 1))
            .unwrap()
            .instrument
            .security_id,
        "62013"
    );
    assert_eq!(resolve(&flat("NSE:RELIANCE1!", 1)).unwrap().units, 500);
    assert_eq!(
        resolve(&flat("NSE:BAJAJ_AUTO1!", 1))
            .unwrap()
            .instrument
            .trading_symbol,
        "BAJAJ-AUTO-Dec2026-FUT"
    );
    let crude = resolve(&flat("MCX:CRUDEOIL1!", 3)).unwrap();
    assert_eq!(
        (crude.instrument.exchange_segment, crude.units),
        ("MCX_COMM", 3)
    );
    // On the expiry day itself the expiring contract is still the front month.
    let on_expiry = sample()
        .resolve(
            &flat("NSE:NIFTY1!", 1),
            NaiveDate::from_ymd_opt(2026, 11, 24).unwrap(),
            QuantityUnit::Lots,
        )
        .unwrap();
    assert_eq!(on_expiry.instrument.trading_symbol, "NIFTY-Nov2026-FUT");
}

#[test]
fn options_resolve_from_dhan_fields_and_tradingview_tickers() {
    let dhan = leg(
        json!({"alertType":"single_order","order_legs":[{"transactionType":"B","orderType":"MKT",
        "quantity":"1","exchange":"NSE","symbol":"NIFTY","instrument":"OPT","productType":"I",
        "option_type":"CE","strike_price":"24000","expiry_date":"2026-12-08"}]}),
    );
    let r = resolve(&dhan).unwrap();
    assert_eq!(
        (r.instrument.security_id.as_str(), r.units),
        ("71301", 65),
        "the weekly of 8 Dec, one lot"
    );
    let tv = resolve(&flat("NSE:NIFTY261201P24000", 2)).unwrap();
    assert_eq!(
        (tv.instrument.security_id.as_str(), tv.units),
        ("71246", 130)
    );
    let stock = resolve(&flat("NSE:RELIANCE261229C1300", 1)).unwrap();
    assert_eq!(stock.instrument.security_id, "72510");
    let sensex = resolve(&flat("BSE:SENSEX261203C80000", 1)).unwrap();
    assert_eq!(
        (sensex.instrument.exchange_segment, sensex.units),
        ("BSE_FNO", 20)
    );
    let missing = resolve(&flat("NSE:NIFTY261201C99999", 1)).unwrap_err();
    assert!(
        missing.contains("no NIFTY 2026-12-01 99999 CE option") && missing.contains("2026-12-08"),
        "{missing}"
    );
}

#[test]
fn dhan_format_futures_take_their_expiry_or_the_nearest() {
    let dated = leg(
        json!({"alertType":"single_order","order_legs":[{"transactionType":"S","orderType":"MKT",
        "quantity":"1","exchange":"NFO","symbol":"NIFTY","instrument":"FUTIDX","productType":"M",
        "expiry_date":"2027-01-26"}]}),
    );
    assert_eq!(
        resolve(&dated).unwrap().instrument.trading_symbol,
        "NIFTY-Jan2027-FUT"
    );
    let nearest = leg(
        json!({"alertType":"single_order","order_legs":[{"transactionType":"S","orderType":"MKT",
        "quantity":"1","exchange":"NSE","symbol":"NIFTY","instrument":"FUT","productType":"M"}]}),
    );
    assert_eq!(
        resolve(&nearest).unwrap().instrument.trading_symbol,
        "NIFTY-Dec2026-FUT"
    );
    assert_eq!(
        resolve(&flat("NFO:NIFTY-Dec2026-FUT", 1))
            .unwrap()
            .instrument
            .security_id,
        "62011"
    );
}

#[test]
fn quantities_in_units_must_be_whole_lots_and_the_refusal_names_the_nearest() {
    let m = sample();
    let ok = m
        .resolve(&flat("NSE:NIFTY1!", 130), today(), QuantityUnit::Units)
        .unwrap();
    assert_eq!(ok.units, 130);
    let err = m
        .resolve(&flat("NSE:NIFTY1!", 100), today(), QuantityUnit::Units)
        .unwrap_err()
        .message;
    assert!(
        err.contains("not a whole number of lots (lot size 65)")
            && err.contains("nearest valid quantities are 65 (1 lot) and 130 (2 lots)"),
        "{err}"
    );
    // Ten "contracts" written for a lots template: refused, never 10 × 65.
    let err = m
        .resolve(&flat("NSE:NIFTY1!", 10), today(), QuantityUnit::Units)
        .unwrap_err()
        .message;
    assert!(
        err.contains("65 (1 lot) and 130 (2 lots)") && err.contains("FNO_QUANTITY=lots"),
        "{err}"
    );
    let err = m
        .resolve(&flat("NSE:NIFTY1!", 200), today(), QuantityUnit::Units)
        .unwrap_err()
        .message;
    assert!(err.contains("195 (3 lots) and 260 (4 lots)"), "{err}");
    let which = m
        .resolve(&flat("NSE:NIFTY1!", 10), today(), QuantityUnit::Units)
        .unwrap_err();
    assert!(which.quantity, "the quantity is at fault, not the symbol");
    let equity = m
        .resolve(&flat("NSE:SBIN", 7), today(), QuantityUnit::Units)
        .unwrap();
    assert_eq!(equity.units, 7, "equity lots are 1");
    assert_eq!(QuantityUnit::default(), QuantityUnit::Units);
}

fn dhan(symbol: &str, extra: Value) -> LegOrder {
    let mut l = json!({"transactionType":"B","orderType":"MKT","quantity":"65",
        "exchange":"NSE","symbol":symbol,"productType":"M"});
    for (k, v) in extra.as_object().unwrap() {
        l[k] = v.clone();
    }
    leg(json!({"alertType":"single_order","order_legs":[l]}))
}

/// Dhan trading symbols, as the upstream's users send them (its lookup keyed on them).
#[test]
fn full_trading_symbols_resolve_with_or_without_instrument() {
    for extra in [
        json!({}),
        json!({"instrument":"FUT"}),
        json!({"instrument":"FUTIDX"}),
    ] {
        let r = resolve(&dhan("NIFTY-Dec2026-FUT", extra.clone())).unwrap();
        assert_eq!(r.instrument.security_id, "62011", "{extra}");
    }
    let crude = resolve(&dhan(
        "CRUDEOIL-17Dec2026-FUT",
        json!({"instrument":"FUTCOM","exchange":"MCX"}),
    ))
    .unwrap();
    assert_eq!(crude.instrument.security_id, "569950");
    let stock_option = resolve(&dhan(
        "RELIANCE-Dec2026-1300-CE",
        json!({"instrument":"OPTSTK"}),
    ))
    .unwrap();
    assert_eq!(stock_option.instrument.security_id, "72510");

    // The NSE symbol names a month: two weeklies of December share it. An expiry picks one;
    // without, both are live on 1 Dec, so the alert is refused naming them (the upstream
    // silently took the file's last row).
    let weekly = resolve(&dhan(
        "NIFTY-Dec2026-24000-CE",
        json!({"instrument":"CE","expiry_date":"2026-12-08"}),
    ))
    .unwrap();
    assert_eq!(weekly.instrument.security_id, "71301");
    let err = resolve(&dhan(
        "NIFTY-Dec2026-24000-CE",
        json!({"instrument":"OPTIDX"}),
    ))
    .unwrap_err();
    assert!(
        err.contains("names 2 live contracts (expiries 2026-12-01, 2026-12-08)")
            && err.contains("expiry_date"),
        "{err}"
    );
    // After the first weekly expired, the symbol names one live contract.
    let later = sample()
        .resolve(
            &dhan("NIFTY-Dec2026-24000-CE", json!({"instrument":"OPT"})),
            NaiveDate::from_ymd_opt(2026, 12, 2).unwrap(),
            QuantityUnit::Units,
        )
        .unwrap();
    assert_eq!(later.instrument.security_id, "71301");
    let expired = resolve(&dhan("NIFTY-Nov2026-FUT", json!({"instrument":"FUT"}))).unwrap_err();
    assert!(expired.contains("has expired (on 2026-11-24)"), "{expired}");
    let gone = resolve(&dhan("NIFTY-Dec2026-99999-CE", json!({}))).unwrap_err();
    assert!(gone.contains("is not in the scrip master"), "{gone}");
}

#[test]
fn unknown_symbols_name_the_closest_candidates() {
    let err = resolve(&flat("NSE:RELIANC", 1)).unwrap_err();
    assert!(err.contains("did you mean RELIANCE"), "{err}");
    let err = resolve(&flat("NSE:ZZZZZZZZ", 1)).unwrap_err();
    assert_eq!(err, "NSE:ZZZZZZZZ is not in the scrip master");
    let err = resolve(&flat("NSE:NIFTY", 1)).unwrap_err();
    assert!(
        err.contains("is an index") && err.contains("NIFTY1!"),
        "{err}"
    );
    let err = resolve(&flat("NSE:NIFTY3!", 1)).unwrap_err();
    assert!(err.contains("needs 3 live expiries"), "{err}");
}

#[test]
fn lookup_reads_tickers_as_tradingview_writes_them() {
    let m = sample();
    let r = m.lookup("NIFTY1!", today()).unwrap();
    assert_eq!((r.security_id.as_str(), r.lot_size), ("62011", 65));
    assert_eq!(r.expiry, NaiveDate::from_ymd_opt(2026, 12, 29));
    assert_eq!(
        m.lookup("NSE:RELIANCE", today()).unwrap().security_id,
        "2885"
    );
    assert!(m.lookup("XYZ:RELIANCE", today()).is_err());
}
