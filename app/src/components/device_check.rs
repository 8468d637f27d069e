//! Tells the parent, in plain words, what this device's graphics chip can do for the app.

use leptos::prelude::*;

use crate::components::icon::{Icon, IconName};
use crate::estimate::{self, Estimated, Estimates};

use crate::gpu::{self, AdapterReport, GpuStatus, format_bytes};
use crate::studio;

#[component]
pub fn DeviceCheck() -> impl IntoView {
    let status = LocalResource::new(gpu::probe);
    view! {
        <section class="card device-check" data-testid="device-check" aria-live="polite">
            <h2>"Your device"</h2>
            <Suspense fallback=|| view! { <p data-testid="device-checking">"Checking what your device can do…"</p> }>
                {move || Suspend::new(async move {
                    match status.await {
                        GpuStatus::Adapter(report) => adapter_view(report).into_any(),
                        GpuStatus::NoAdapter => no_gpu_view(
                            "no-adapter",
                            "This browser knows WebGPU, but it did not offer a graphics chip the app can use (it may be switched off or blocked for this device).",
                        ).into_any(),
                        GpuStatus::NoWebGpu => no_gpu_view(
                            "no-webgpu",
                            "This browser cannot use your graphics chip: it has no WebGPU.",
                        ).into_any(),
                    }
                })}
            </Suspense>
        </section>
    }
}

fn adapter_view(report: AdapterReport) -> impl IntoView {
    let speed = if report.is_fallback {
        "This is a software graphics adapter: pictures work, but slowly. A computer or tablet with a graphics chip is much faster."
    } else {
        "Pictures are drawn on your graphics chip."
    };
    let precision = if report.shader_f16 {
        "It computes in half precision (shader-f16), so a picture model needs half the memory."
    } else {
        "It has no half precision (shader-f16 is not available), so picture models run in full precision and need twice the memory."
    };
    view! {
        <div data-testid="device-status" data-state="adapter" data-f16=report.shader_f16.to_string()>
            <p class="status-ok">
                <Icon name=IconName::Check />
                <span>"WebGPU is ready: " <strong data-testid="adapter-name">{report.name()}</strong></span>
            </p>
            <p>{speed}</p>
            <p>{precision}</p>
            <DeviceSpeedNote />
            <details class="technical">
                <summary>"Technical details"</summary>
                <dl class="limits">
                    <dt>"Largest buffer"</dt>
                    <dd data-testid="limit-max-buffer">{format_bytes(report.max_buffer_size)}</dd>
                    <dt>"Largest storage binding"</dt>
                    <dd data-testid="limit-max-binding">{format_bytes(report.max_storage_buffer_binding_size)}</dd>
                    <dt>"Workgroup memory"</dt>
                    <dd>{format!("{:.0} KB", report.max_compute_workgroup_storage_size / 1024.0)}</dd>
                    <dt>"Threads per workgroup"</dt>
                    <dd>{report.max_compute_invocations_per_workgroup.to_string()}</dd>
                </dl>
            </details>
        </div>
    }
}

fn no_gpu_view(state: &'static str, reason: &'static str) -> impl IntoView {
    view! {
        <div data-testid="device-status" data-state=state>
            <p class="status-warn"><Icon name=IconName::Warning /><span>{reason}</span></p>
            <p>"ToddlerStories still works: it uses the processor instead, which takes minutes where a graphics chip takes seconds."</p>
            <DeviceSpeedNote />
            <p>"For the best experience, open the app in a recent version of Chrome, Edge or Safari on a computer or tablet."</p>
        </div>
    }
}

/// The default model's time for a page and an avatar on this device, measured here: on the
/// Models screen, which estimates every model when it opens (Settings starts no engine for it).
#[component]
fn DeviceSpeedNote() -> impl IntoView {
    let estimates = use_context::<Estimates>();
    move || {
        let estimates = estimates?;
        let text = match estimates.of_default() {
            None => "Working out how fast this device is…".to_owned(),
            Some(Err(_)) => return None,
            Some(Ok(estimated)) => {
                let estimate = &estimated.estimate;
                let model = &studio::default_model().name;
                if !estimate.draws() {
                    format!(
                        "{model}, the default picture model, needs more memory than this browser can give it here; the Models screen suggests a smaller one."
                    )
                } else {
                    format!(
                        "With {model}, this device draws a page in {} and learns an avatar in {}.",
                        estimate::about(estimate.picture_seconds),
                        estimate::about(estimate.avatar_seconds)
                    )
                }
            }
        };
        Some(view! { <p data-testid="device-speed">{text}</p> })
    }
}

/// The work a screen does on the processor, for [`SlowDeviceNote`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowWork {
    Picture,
    Avatar,
}

impl SlowWork {
    /// What to expect, with this device's measured estimate where there is one.
    fn expectation(self, estimated: Option<&Estimated>) -> String {
        let seconds = estimated.map(|estimated| match self {
            SlowWork::Picture => estimated.estimate.picture_seconds,
            SlowWork::Avatar => estimated.estimate.avatar_seconds,
        });
        match self {
            SlowWork::Picture => format!(
                "Each picture takes {} on this browser: it cannot use your graphics chip, so the app draws on the processor. ",
                seconds.map_or("minutes".to_owned(), estimate::about)
            ),
            SlowWork::Avatar => format!(
                "Learning an avatar takes {} on this browser: it cannot use your graphics chip, so the app learns on the processor. \
                 Keep this page open; if it closes, \u{201c}Continue learning\u{201d} picks up where it stopped. \
                 An avatar learned on another device can also be imported here. ",
                seconds.map_or("hours".to_owned(), estimate::about)
            ),
        }
    }
}

/// A short note on the screens that draw or learn, shown only where WebGPU is missing: the
/// work happens on the processor, how long it takes there (measured on this device), and that
/// nothing is wrong.
#[component]
pub fn SlowDeviceNote(
    /// What is slow here.
    work: SlowWork,
) -> impl IntoView {
    let status = LocalResource::new(gpu::probe);
    // Estimated only where the note shows: a device with WebGPU starts no engine for it.
    let estimated = LocalResource::new(|| async {
        match gpu::probe().await {
            GpuStatus::NoWebGpu | GpuStatus::NoAdapter => {
                estimate::for_model(studio::default_model()).await.ok()
            }
            GpuStatus::Adapter(_) => None,
        }
    });
    move || {
        let slow = status
            .with(|status| matches!(status, Some(GpuStatus::NoWebGpu | GpuStatus::NoAdapter)));
        let estimated = estimated.get().flatten();
        slow.then(|| {
            view! {
                <p class="notice slow-device" data-testid="slow-device" role="note">
                    <Icon name=IconName::Warning />
                    <span>
                        {work.expectation(estimated.as_ref())}
                        "Everything still works; Chrome or Edge on a computer with a graphics chip takes seconds."
                    </span>
                </p>
            }
        })
    }
}
