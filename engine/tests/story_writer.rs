//! The story writer through its CLI (`toddler write-story`, which other checks rely on), with the
//! real SmolLM2-135M-Instruct (`cargo xtask language-model`): whatever the seed, exactly the pages
//! asked for, each with text and a scene, the child named, nothing from the app's list of words
//! unsuitable for toddlers; the same seed writes the same story; bad requests are refused in
//! plain words.

mod common;

use std::ffi::OsStr;
use std::path::PathBuf;

use stories::writer::unsuitable;

fn real_model() -> PathBuf {
    let path = common::real_model_path();
    assert!(
        path.exists(),
        "no SmolLM2-135M-Instruct at {}: run `cargo xtask language-model`",
        path.display()
    );
    path
}

fn write_story(
    idea: &str,
    child: &str,
    pronouns: &str,
    pages: usize,
    seed: u64,
) -> serde_json::Value {
    let model = real_model();
    let (pages, seed) = (pages.to_string(), seed.to_string());
    let output = common::run_toddler(&[
        OsStr::new("write-story"),
        OsStr::new("--model"),
        model.as_os_str(),
        OsStr::new("--idea"),
        OsStr::new(idea),
        OsStr::new("--child"),
        OsStr::new(child),
        OsStr::new("--pronouns"),
        OsStr::new(pronouns),
        OsStr::new("--pages"),
        OsStr::new(&pages),
        OsStr::new("--seed"),
        OsStr::new(&seed),
    ]);
    let stdout = String::from_utf8(output.stdout).unwrap();
    let last = stdout.lines().last().expect("write-story printed nothing");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_str(last).unwrap_or_else(|error| panic!("{error}: {last}"))
}

fn text(value: &serde_json::Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not text"))
}

#[test]
fn any_seed_gives_the_pages_asked_naming_the_child_with_nothing_unsuitable() {
    for (idea, child, pronouns, pages, seed) in [
        (
            "Mia is scared of the bath - make her brave and funny",
            "Mia",
            "she",
            6,
            0,
        ),
        (
            "a rainy day at the zoo with lots of animals",
            "Zoë-Anne",
            "she",
            3,
            11,
        ),
        ("learning to share toys at nursery", "Olu", "he", 4, 23),
        (
            "a picnic in the park that goes a bit wrong",
            "Kit",
            "they",
            2,
            907,
        ),
    ] {
        let story = write_story(idea, child, pronouns, pages, seed);
        let written = story["pages"].as_array().unwrap();
        assert_eq!(written.len(), pages, "{story}");
        assert!(!text(&story["title"]).trim().is_empty(), "{story}");
        for page in written {
            assert_eq!(page.as_object().unwrap().len(), 2, "{page}");
            for field in ["text", "scene"] {
                let words = text(&page[field]);
                assert!(
                    words.chars().filter(|c| c.is_alphabetic()).count() >= 3,
                    "{page}"
                );
                assert_eq!(unsuitable(words), None, "{field}: {words}");
                // The model wrote a stand-in for the child; none of it is left.
                for stand_in in ["Lily", "Tom", "Sam"] {
                    assert!(
                        !words
                            .split(|c: char| !c.is_alphanumeric())
                            .any(|w| w == stand_in),
                        "{words}"
                    );
                }
            }
        }
        assert_eq!(unsuitable(text(&story["title"])), None, "{story}");
        assert!(
            text(&written[0]["text"]).contains(child),
            "page 1 does not name {child}: {story}"
        );
    }
}

#[test]
fn the_same_seed_writes_the_same_story_and_another_seed_another() {
    let idea = "a trip to the beach with a bucket and spade";
    let first = write_story(idea, "Ada", "she", 2, 5);
    assert_eq!(first, write_story(idea, "Ada", "she", 2, 5));
    assert_ne!(first, write_story(idea, "Ada", "she", 2, 6));
}

#[test]
fn requests_the_writer_cannot_take_are_refused_in_plain_words() {
    let model = real_model();
    for (idea, pages, expected) in [
        ("a day at the farm", "40", "2 to 12 pages"),
        ("a sword fight with a dragon", "6", "\"sword\""),
        ("  ", "6", "Write a few words about the story"),
    ] {
        let output = common::toddler_output(&[
            OsStr::new("write-story"),
            OsStr::new("--model"),
            model.as_os_str(),
            OsStr::new("--idea"),
            OsStr::new(idea),
            OsStr::new("--child"),
            OsStr::new("Mia"),
            OsStr::new("--pages"),
            OsStr::new(pages),
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success() && stderr.contains(expected),
            "{idea}: {stderr}"
        );
    }
}
