//! The story writer's checks on whatever a language model writes (any text after any frame), and
//! a parent's request as the worker receives it (JSON) checked before anything is written.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stories::writer::{Part, StoryIdea, unsuitable};
use stories::{Child, Pronouns};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for pronouns in Pronouns::ALL {
        let idea = StoryIdea {
            idea: text.to_string(),
            child: Child {
                name: text.chars().take(12).collect(),
                pronouns,
                companion: String::new(),
            },
            pages: 2,
        };
        let _ = idea.check();
        let _ = idea.messages();
        for part in Part::all(2) {
            for naming in [false, true] {
                if let Ok(kept) = idea.finish(part, &text, naming) {
                    assert_eq!(unsuitable(&kept), None, "{kept}");
                }
                let _ = idea.draft(part, &text, naming);
            }
        }
    }
    if let Ok(idea) = serde_json::from_slice::<StoryIdea>(data) {
        let _ = idea.check();
    }
});
