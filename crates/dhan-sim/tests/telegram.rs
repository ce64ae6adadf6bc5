//! The Telegram stand-in (`/sim/telegram/…`): what a dhanhook pointed at it sends is recorded
//! and listed; a message without a chat or text is refused as Telegram would.

mod common;

use common::*;
use dhan_sim::SimConfig;
use serde_json::{Value, json};

#[tokio::test]
async fn messages_sent_to_the_stand_in_are_recorded_and_listed() {
    let sim = start(SimConfig::default()).await;
    let client = http();
    let base = sim.auth_url();
    let send = |body: Value| {
        client
            .post(format!("{base}/sim/telegram/botANY-TOKEN/sendMessage"))
            .json(&body)
            .send()
    };
    let ok = send(json!({"chat_id": "42", "text": "<b>hello</b>", "parse_mode": "HTML"}))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let v: Value = ok.json().await.unwrap();
    assert_eq!(v, json!({"ok": true, "result": {"message_id": 1}}));

    let refused = send(json!({"text": "no chat"})).await.unwrap();
    assert_eq!(refused.status(), 400);

    let listed: Value = client
        .get(format!("{base}/sim/telegram/messages"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed,
        json!([{"chat_id": "42", "text": "<b>hello</b>", "parse_mode": "HTML"}])
    );
    assert_eq!(sim.telegram_messages().len(), 1);
}
