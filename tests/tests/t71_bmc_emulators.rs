//! The BMC emulators the out-of-band tests drive (`sendan_tests::bmc`), proven on their own: a Redfish BMC
//! (`sushy-emulator --fake`) over verified TLS with basic authentication, and an IPMI BMC (pyghmi, our
//! `tests/fixtures/bmc/fakebmc.py`) through `ipmitool -I lanplus -C 3`. Both bind 127.0.0.1 only. They come from
//! `cargo xtask setup`; when they are missing these tests fail saying so, they never skip.

use std::time::Duration;

use sendan_tests::bmc::{FakeSystem, Ipmi, Redfish, notifications, notified};
use serde_json::{Value, json};

const ON: &str = "8d0c7f1e-1b2a-4c3d-9e8f-7a6b5c4d3e01";
const OFF: &str = "8d0c7f1e-1b2a-4c3d-9e8f-7a6b5c4d3e02";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redfish_emulator_speaks_verified_tls_with_basic_auth_and_lands_power_changes_later() {
    let (notify_url, mut notes) = notifications().await;
    let systems = [FakeSystem::new("lab-on", ON, true), FakeSystem::new("lab-off", OFF, false)];
    let bmc = Redfish::start_with(&systems, Some(&notify_url));
    assert!(bmc.url.starts_with("https://127.0.0.1:"), "{}", bmc.url);
    let password = bmc.password();

    // TLS is verified against the emulator's CA: a client that trusts nothing else fails before any HTTP.
    let untrusting = sendan_tests::http();
    assert!(
        untrusting.get(format!("{}/redfish/v1/", bmc.url)).send().await.is_err(),
        "an unverified server is refused"
    );

    // The right credentials list both systems.
    let (status, collection) = bmc.get("/redfish/v1/Systems").await;
    assert_eq!(status, 200, "{collection}");
    let members: Vec<&str> =
        collection["Members"].as_array().unwrap().iter().filter_map(|m| m["@odata.id"].as_str()).collect();
    assert_eq!(members.len(), 2, "{collection}");
    assert!(members.contains(&bmc.system_path(ON).as_str()) && members.contains(&bmc.system_path(OFF).as_str()));

    // A wrong password, and none, are a clear 401 (the service root alone answers without credentials).
    let client = bmc.client();
    let systems_url = format!("{}/redfish/v1/Systems", bmc.url);
    let wrong = std::fs::read_to_string(bmc.wrong_password_file()).unwrap();
    assert_ne!(wrong, password);
    let r = client.get(&systems_url).basic_auth(&bmc.user, Some(&wrong)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let challenge = r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(challenge.starts_with("Basic"), "{challenge}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["message"], "Incorrect username or password", "{body}");
    let r = client.get(&systems_url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client.get(format!("{}/redfish/v1/", bmc.url)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "the service root needs no credentials");

    // The system: its power, its boot override and its reset action.
    let system = bmc.system(ON).await;
    assert_eq!(system["UUID"], ON);
    assert_eq!(system["Name"], "lab-on");
    assert_eq!(bmc.power(ON).await, "On");
    assert_eq!(bmc.power(OFF).await, "Off");
    let reset = &system["Actions"]["#ComputerSystem.Reset"];
    let target = reset["target"].as_str().unwrap().to_owned();
    assert_eq!(target, format!("{}/Actions/ComputerSystem.Reset", bmc.system_path(ON)));
    assert_eq!(
        reset["ResetType@Redfish.AllowableValues"],
        json!(["On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi", "ForceOn"])
    );
    assert_eq!(bmc.boot(ON).await, ("Hdd".to_owned(), "Continuous".to_owned()));

    // ForceOff answers 204 at once, and lands 1–11 s later: polled, as a client must.
    let post = |body: Value| {
        client.post(format!("{}{target}", bmc.url)).basic_auth(&bmc.user, Some(&password)).json(&body).send()
    };
    let r = post(json!({"ResetType": "ForceOff"})).await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let started = std::time::Instant::now();
    bmc.wait_power(ON, "Off").await;
    eprintln!("ForceOff landed after {:?}", started.elapsed());
    // Every change of the system is PUT to the notification URL: the pending change, then its landing.
    let landed = notified(&mut notes, "lab-on is off", |v| v["uuid"] == ON && v["power_state"] == "Off").await;
    assert_eq!(landed["name"], "lab-on", "{landed}");

    // PowerCycle is not supported: 501 with a Redfish error.
    let r = post(json!({"ResetType": "PowerCycle"})).await.unwrap();
    assert_eq!(r.status().as_u16(), 501);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["message"], "Power state PowerCycle is not supported", "{body}");

    // A one-time boot override reads back as Continuous.
    let r = client
        .patch(format!("{}{}", bmc.url, bmc.system_path(OFF)))
        .basic_auth(&bmc.user, Some(&password))
        .json(&json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(bmc.boot(OFF).await, ("Pxe".to_owned(), "Continuous".to_owned()));
    notified(&mut notes, "lab-off boots from PXE", |v| v["uuid"] == OFF && v["boot_device"] == "Pxe").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ipmi_bmc_answers_ipmitool_lanplus_and_records_every_change() {
    let (notify_url, mut notes) = notifications().await;
    let bmc = Ipmi::start_with(true, Some(&notify_url));
    assert!(bmc.address.starts_with("127.0.0.1:"), "{}", bmc.address);
    assert_eq!(bmc.power(), "on");
    assert_eq!(bmc.boot(), "default");

    assert_eq!(bmc.ipmitool(&["chassis", "power", "off"]).trim(), "Chassis Power Control: Down/Off");
    assert_eq!(bmc.power(), "off");
    // A reset needs a running machine.
    let out = bmc.run(&["chassis", "power", "reset"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Command not supported in present state"), "{out:?}");

    // A one-time PXE override is consumed by the next boot; a persistent one stays.
    assert_eq!(bmc.ipmitool(&["chassis", "bootdev", "pxe"]).trim(), "Set Boot Device to pxe");
    assert_eq!(bmc.boot(), "network");
    let flags = bmc.ipmitool(&["chassis", "bootparam", "get", "5"]);
    assert!(flags.contains("Force PXE") && flags.contains("Options apply to only next boot"), "{flags}");
    assert_eq!(bmc.ipmitool(&["chassis", "power", "on"]).trim(), "Chassis Power Control: Up/On");
    assert_eq!(bmc.power(), "on");
    let booted = bmc.state();
    assert_eq!((booted.event.as_str(), booted.booted_from.as_deref()), ("power_on", Some("network")), "{booted:?}");
    assert_eq!(booted.bootdev, "default", "a one-time override is consumed by the boot");
    bmc.ipmitool(&["chassis", "bootdev", "pxe", "options=persistent"]);
    bmc.ipmitool(&["chassis", "power", "reset"]);
    let state = bmc.state();
    assert_eq!((state.event.as_str(), state.booted_from.as_deref()), ("power_reset", Some("network")));
    assert!(state.persistent && state.bootdev == "network", "{state:?}");
    let flags = bmc.ipmitool(&["chassis", "bootparam", "get", "5"]);
    assert!(flags.contains("Force PXE") && flags.contains("Options apply to all future boots"), "{flags}");
    bmc.ipmitool(&["chassis", "power", "soft"]);
    assert_eq!(bmc.power(), "off");

    let events: Vec<String> = bmc.events().into_iter().map(|e| e.event).collect();
    assert_eq!(events, ["start", "power_off", "bootdev", "power_on", "bootdev", "power_reset", "power_soft"]);
    // The same changes reach the notification URL, in order.
    let mut seen = Vec::new();
    while seen.len() < events.len() {
        let v = tokio::time::timeout(Duration::from_secs(10), notes.recv()).await.expect("a notification").unwrap();
        seen.push(v["event"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(seen, events);

    // A wrong password is refused at once with ipmitool's session error.
    let mut cmd = bmc.command_as(&bmc.user, &bmc.wrong_password_file());
    cmd.args(["chassis", "power", "status"]);
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Unable to establish IPMI v2 / RMCP+ session"), "{stderr}");
    assert_eq!(bmc.power(), "off", "the BMC still answers the right password");
}
