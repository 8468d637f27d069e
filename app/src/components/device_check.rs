//! Tells the parent, in plain words, what this device's graphics chip can do for the app.

use leptos::prelude::*;

use crate::components::icon::{Icon, IconName};
use crate::gpu::{self, AdapterReport, GpuStatus, format_bytes};

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
        "This is a software graphics adapter: pictures will work, but slowly. A computer or tablet with a graphics chip will be much faster."
    } else {
        "Pictures will be drawn on your graphics chip."
    };
    let precision = if report.shader_f16 {
        "Half precision (shader-f16) is available, so the picture model needs about half the memory."
    } else {
        "Half precision (shader-f16) is not available, so the picture model runs in full precision and needs about twice the memory."
    };
    view! {
        <div data-testid="device-status" data-state="adapter" data-f16=report.shader_f16.to_string()>
            <p class="status-ok">
                <Icon name=IconName::Check />
                <span>"WebGPU is ready: " <strong data-testid="adapter-name">{report.name()}</strong></span>
            </p>
            <p>{speed}</p>
            <p>{precision}</p>
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
        </div>
    }
}

fn no_gpu_view(state: &'static str, reason: &'static str) -> impl IntoView {
    let expectation = format!(
        "ToddlerStories will still work by using the processor instead, but each picture will take about \
         {CPU_MINUTES_PER_PICTURE} minutes rather than seconds, and learning an avatar about {CPU_HOURS_PER_AVATAR} hours. "
    );
    view! {
        <div data-testid="device-status" data-state=state>
            <p class="status-warn"><Icon name=IconName::Warning /><span>{reason}</span></p>
            <p>
                {expectation}
                "For the best experience, open the app in a recent version of Chrome, Edge or Safari on a computer or tablet."
            </p>
        </div>
    }
}

/// What the processor takes for the default model at the app's defaults (SD-Turbo: one step at
/// 512² with the fast decoder; an avatar: 300 steps at 512²), in the browser's wasm fallback on
/// one core of a 2-core machine: the measured rate of a UNet step times each task's work
/// (docs/benchmarks.md, "What a parent is told", issue 18).
pub const CPU_MINUTES_PER_PICTURE: u32 = 2;
pub const CPU_HOURS_PER_AVATAR: u32 = 30;

/// The work a screen does on the processor, for [`SlowDeviceNote`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlowWork {
    Picture,
    Avatar,
}

impl SlowWork {
    fn expectation(self) -> String {
        match self {
            SlowWork::Picture => format!(
                "Each picture takes about {CPU_MINUTES_PER_PICTURE} minutes on this browser: it cannot use your graphics chip, so the app draws on the processor. "
            ),
            SlowWork::Avatar => format!(
                "Learning an avatar takes about {CPU_HOURS_PER_AVATAR} hours on this browser: it cannot use your graphics chip, so the app learns on the processor. \
                 Keep this page open; if it closes, \u{201c}Continue learning\u{201d} picks up where it stopped. \
                 An avatar learned on another device can also be imported here. "
            ),
        }
    }
}

/// A short note on the screens that draw or learn, shown only where WebGPU is missing: the
/// work happens on the processor, how long it takes there, and that nothing is wrong.
#[component]
pub fn SlowDeviceNote(
    /// What is slow here.
    work: SlowWork,
) -> impl IntoView {
    let status = LocalResource::new(gpu::probe);
    move || {
        let slow = status
            .with(|status| matches!(status, Some(GpuStatus::NoWebGpu | GpuStatus::NoAdapter)));
        slow.then(|| {
            view! {
                <p class="notice slow-device" data-testid="slow-device" role="note">
                    <Icon name=IconName::Warning />
                    <span>
                        {work.expectation()}
                        "Everything still works; Chrome or Edge on a computer with a graphics chip takes seconds."
                    </span>
                </p>
            }
        })
    }
}
