//! Device names (`cpu`, `cuda:N`, `metal:N`) and what this build can use.

use candle_core::Device;

/// The devices available to this build: always `cpu`; CUDA and Metal devices when compiled with
/// those features and present.
pub fn available() -> Vec<String> {
    #[allow(unused_mut, reason = "only the accelerator features push more")]
    let mut out = vec!["cpu".to_owned()];
    #[cfg(feature = "cuda")]
    for i in 0..16 {
        if Device::new_cuda(i).is_err() {
            break;
        }
        out.push(format!("cuda:{i}"));
    }
    #[cfg(feature = "metal")]
    if Device::new_metal(0).is_ok() {
        out.push("metal:0".to_owned());
    }
    out
}

/// Opens a device by name.
pub fn open(name: &str) -> Result<Device, String> {
    if name == "cpu" {
        return Ok(Device::Cpu);
    }
    let index = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|i| i.parse::<usize>().ok())
    };
    if let Some(i) = index("cuda:") {
        return Device::new_cuda(i).map_err(|e| format!("cannot open `{name}`: {e}"));
    }
    if let Some(i) = index("metal:") {
        return Device::new_metal(i).map_err(|e| format!("cannot open `{name}`: {e}"));
    }
    Err(format!("unknown device `{name}`"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_is_always_there() {
        assert_eq!(super::available()[0], "cpu");
        assert!(super::open("cpu").is_ok());
        assert!(super::open("tpu:0").is_err());
    }
}
