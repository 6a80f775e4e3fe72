//! `emomon devices`: input devices and what they support.

use emomon::audio::mic::list_input_devices;

pub fn run() -> anyhow::Result<()> {
    let devices = list_input_devices()?;
    if devices.is_empty() {
        println!("No audio input devices found. Connect a microphone, or analyse a file instead.");
        return Ok(());
    }
    for device in devices {
        let marker = if device.is_default { " (default)" } else { "" };
        println!("{}{marker}", device.name);
        if let Some(config) = &device.default_config {
            println!("    default: {config}");
        }
        for config in &device.configs {
            println!("    supports: {config}");
        }
    }
    Ok(())
}
