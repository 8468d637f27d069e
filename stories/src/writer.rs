//! The story writer's words: what a language model is told, the frame the app writes around each
//! page (so a story has exactly the pages asked for, each with text and a scene, whatever the
//! model does), and the checks every title, page and scene passes before a parent sees it —
//! suitability for toddlers (the list in `unsuitable-words.txt`, owned by the app), naming the
//! child, whole sentences. The engine runs the model; nothing here knows about one.
//!
//! The child's name goes through a stand-in (`Lily`, `Tom` or `Sam`, by pronouns): any name works,
//! however a tokenizer splits it, and the model never reads it.

use serde::{Deserialize, Serialize};

use crate::templates::{Child, Pronouns, Template, TemplatePage};

/// The fewest and most pages the writer writes (the templates have 6 to 12).
pub const PAGES: std::ops::RangeInclusive<usize> = 2..=12;
/// The pages a story has unless the parent asks for another number.
pub const DEFAULT_PAGES: usize = 6;
/// Tries per title, page text or scene before the writer gives up on the story.
pub const TRIES: usize = 5;
/// The longest idea the writer reads, in characters.
pub const MAX_IDEA_CHARS: usize = 300;

/// What a parent asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoryIdea {
    /// One line: "Mia is scared of the bath: make her brave and funny".
    pub idea: String,
    pub child: Child,
    pub pages: usize,
}

/// A written story, the child named.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WrittenStory {
    pub title: String,
    pub pages: Vec<WrittenPage>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WrittenPage {
    pub text: String,
    /// What the picture shows, without the child's description (as a template's scene).
    pub scene: String,
}

/// One piece of the story the model writes after a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    Title,
    /// Page `n`'s text (from 0).
    Text(usize),
    /// Page `n`'s scene.
    Scene(usize),
}

impl Part {
    /// The most tokens the model may spend on it.
    pub fn max_tokens(self) -> usize {
        match self {
            Part::Title => 16,
            Part::Text(_) => 48,
            Part::Scene(_) => 28,
        }
    }

    /// Sentences it holds at most: the writer stops the model after the last one's full stop.
    pub fn max_sentences(self) -> usize {
        match self {
            Part::Title => 1,
            Part::Text(_) => 2,
            Part::Scene(_) => 1,
        }
    }

    /// Tokens before the model may end it (a newline or its end of turn).
    pub fn min_tokens(self) -> usize {
        match self {
            Part::Title => 2,
            Part::Text(_) => 6,
            Part::Scene(_) => 3,
        }
    }

    /// The part in a parent's words: "page 3's text".
    pub fn describe(self) -> String {
        match self {
            Part::Title => "the title".into(),
            Part::Text(page) => format!("page {}'s text", page + 1),
            Part::Scene(page) => format!("page {}'s picture", page + 1),
        }
    }

    /// Every part of a story of `pages` pages, in the order they are written.
    pub fn all(pages: usize) -> Vec<Part> {
        std::iter::once(Part::Title)
            .chain((0..pages).flat_map(|page| [Part::Text(page), Part::Scene(page)]))
            .collect()
    }
}

impl Pronouns {
    /// The name the model writes in the child's place.
    fn stand_in(self) -> &'static str {
        match self {
            Pronouns::She => "Lily",
            Pronouns::He => "Tom",
            Pronouns::They => "Sam",
        }
    }
}

impl StoryIdea {
    /// A parent's words checked: something to write about, and a number of pages the writer takes.
    pub fn check(&self) -> Result<(), String> {
        if self.idea.trim().is_empty() {
            return Err(
                "Write a few words about the story first, like \"a trip to the beach\".".into(),
            );
        }
        if self.idea.chars().count() > MAX_IDEA_CHARS {
            return Err(format!(
                "The idea is {} characters long; keep it to one line of at most {MAX_IDEA_CHARS}.",
                self.idea.chars().count()
            ));
        }
        if !PAGES.contains(&self.pages) {
            return Err(format!(
                "A story of {} pages: the writer writes {} to {} pages.",
                self.pages,
                PAGES.start(),
                PAGES.end()
            ));
        }
        if let Some(word) = unsuitable(&self.idea) {
            return Err(format!(
                "The idea has \"{word}\" in it, which the writer keeps out of toddlers' books. Try it in other words."
            ));
        }
        Ok(())
    }

    fn stand_in(&self) -> &'static str {
        self.child.pronouns.stand_in()
    }

    /// The system and user messages: the model's instructions, the child as the stand-in.
    pub fn messages(&self) -> [(&'static str, String); 2] {
        let stand_in = self.stand_in();
        let [subject, object, possessive] = self.child.pronouns.forms();
        let idea = replace_word(self.idea.trim(), self.child.name.trim(), stand_in);
        let companion = match self.child.companion.trim() {
            "" => String::new(),
            companion => format!(" {companion} is in the story too."),
        };
        let system = "You write picture books for toddlers aged one to three. Each page has one or two \
                      short, simple sentences that a toddler can follow, and the stories are gentle, \
                      kind and funny, with a happy ending. Nothing scary, sad or grown-up."
            .to_owned();
        let user = format!(
            "Write a picture book of {pages} pages about a toddler called {stand_in} \
             ({subject}/{object}/{possessive}).{companion} The idea: {idea}\n\
             Start with the title. Then for each page write the page's text, and on the next line \
             the picture: what {stand_in} is doing and where.",
            pages = self.pages,
        );
        [("system", system), ("user", user)]
    }

    /// The words the app writes before `part`, so the model only ever fills in one piece. The
    /// model's own newline or end of turn closes each piece; its text is then `part`'s.
    /// `naming` starts a page's text with the child's name (a retry for a page that left
    /// them out).
    pub fn frame(&self, part: Part, naming: bool) -> String {
        match part {
            Part::Title => "Title:".to_owned(),
            Part::Text(page) if naming => format!("\n\nPage {}: {}", page + 1, self.stand_in()),
            Part::Text(page) => format!("\n\nPage {}:", page + 1),
            Part::Scene(page) => format!("\nPicture {}: {} is", page + 1, self.stand_in()),
        }
    }

    /// `written`, the model's words after `part`'s frame (up to its newline), made tidy and
    /// checked. `naming` is the frame's own start of the text (see [`StoryIdea::frame`]).
    pub fn finish(&self, part: Part, written: &str, naming: bool) -> Result<String, String> {
        let line = written.split('\n').next().unwrap_or_default();
        let mut text = tidy(line);
        if naming && let Part::Text(_) = part {
            text = format!("{} {text}", self.stand_in());
        }
        let letters = text.chars().filter(|c| c.is_alphabetic()).count();
        if letters < 3 {
            return Err("it is empty".into());
        }
        if let Some(word) = unsuitable(&text) {
            return Err(format!("it has \"{word}\" in it"));
        }
        match part {
            Part::Title => Ok(text.trim_end_matches('.').to_owned()),
            Part::Text(page) => {
                let text = whole_sentences(&text);
                let words = words(&text);
                let stand_in = self.stand_in().to_lowercase();
                let named = words.contains(&stand_in);
                let forms = self.child.pronouns.forms();
                if page == 0 && !named {
                    return Err(format!("it does not name {}", self.stand_in()));
                }
                if !named && !words.iter().any(|word| forms.contains(&word.as_str())) {
                    return Err(format!("it is not about {}", self.stand_in()));
                }
                Ok(text)
            }
            Part::Scene(_) => Ok(text.trim_end_matches(['.', '!']).to_owned()),
        }
    }

    /// `part` as a parent sees it while it is written: its line so far, the child named.
    pub fn draft(&self, part: Part, written: &str, naming: bool) -> String {
        let line = tidy(written.split('\n').next().unwrap_or_default());
        let line = match part {
            Part::Text(_) if naming => format!("{} {line}", self.stand_in()),
            _ => line.to_owned(),
        };
        match part {
            Part::Scene(_) => replace_word(&line, self.stand_in(), "the toddler"),
            _ => replace_word(&line, self.stand_in(), self.name()),
        }
    }

    fn name(&self) -> &str {
        crate::templates::non_empty(&self.child.name, "our little one")
    }

    /// The story with the child's name in place of the stand-in.
    pub fn named(&self, story: &WrittenStory) -> WrittenStory {
        let in_text = |text: &str| replace_word(text, self.stand_in(), self.name());
        WrittenStory {
            title: in_text(&story.title),
            pages: story
                .pages
                .iter()
                .map(|page| WrittenPage {
                    text: in_text(&page.text),
                    // The picture's subject is the book's avatar: the scene keeps only a word for them.
                    scene: replace_word(&page.scene, self.stand_in(), "the toddler"),
                })
                .collect(),
        }
    }
}

impl WrittenStory {
    /// A template to start a book from (the text already names the child; nothing to fill).
    pub fn template(&self) -> Template {
        let escape = |text: &str| text.replace(['{', '}'], "");
        Template {
            id: "written".into(),
            title: escape(&self.title),
            summary: "Written with the story writer".into(),
            pages: self
                .pages
                .iter()
                .map(|page| TemplatePage {
                    text: escape(&page.text),
                    scene: escape(&page.scene),
                    alone: false,
                })
                .collect(),
        }
    }
}

/// The list's entries, each a sequence of lower-case words.
fn unsuitable_list() -> impl Iterator<Item = Vec<&'static str>> {
    include_str!("../unsuitable-words.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.split_whitespace().collect())
}

/// The one-word entries: what a decoder can ban token by token.
pub fn unsuitable_words() -> Vec<&'static str> {
    unsuitable_list()
        .filter(|entry| entry.len() == 1)
        .map(|entry| entry[0])
        .collect()
}

/// `word` (lower case) is an entry of one word, or one with an ending added.
pub fn is_unsuitable_word(word: &str) -> bool {
    let word = word.trim_end_matches("'s");
    unsuitable_list().filter(|entry| entry.len() == 1).any(|entry| {
        let entry = entry[0];
        word == entry
            || ["s", "es", "ed", "d", "ing", "er", "ers"]
                .iter()
                .any(|ending| word.strip_suffix(ending) == Some(entry))
            // A doubled last letter: "shooting" is in, "stabbed" too.
            || ["ed", "ing", "er"].iter().any(|ending| {
                word.strip_suffix(ending).is_some_and(|stem| {
                    stem.len() == entry.len() + 1 && stem.starts_with(entry) && stem.ends_with(&entry[entry.len() - 1..])
                })
            })
    })
}

/// The first entry of the list that `text` carries, as the text spells it.
pub fn unsuitable(text: &str) -> Option<String> {
    let words = words(text);
    for (index, word) in words.iter().enumerate() {
        if is_unsuitable_word(word) {
            return Some(word.clone());
        }
        for entry in unsuitable_list().filter(|entry| entry.len() > 1) {
            if words.len() >= index + entry.len()
                && entry
                    .iter()
                    .zip(&words[index..])
                    .all(|(listed, word)| listed == word)
            {
                return Some(entry.join(" "));
            }
        }
    }
    None
}

/// The lower-case words of `text` (letters, and apostrophes inside a word).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphabetic() || c == '\'' || c == '’'))
        .map(|word| {
            word.trim_matches(['\'', '’'])
                .replace('’', "'")
                .to_lowercase()
        })
        .filter(|word| !word.is_empty())
        .collect()
}

/// `text` with the whole word `from` (any case) replaced by `to`.
fn replace_word(text: &str, from: &str, to: &str) -> String {
    if from.is_empty() {
        return text.to_owned();
    }
    let lower = text.to_lowercase();
    let from_lower = from.to_lowercase();
    // Lower-casing can change byte lengths outside ASCII: then leave the text as it is.
    if lower.len() != text.len() || from_lower.len() != from.len() {
        return text.to_owned();
    }
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(&from_lower) {
        let start = search + found;
        let end = start + from.len();
        // Equal lengths overall can still hide a character that changed size: never cut one.
        if !(text.is_char_boundary(start) && text.is_char_boundary(end)) {
            search = end.min(lower.len());
            while !lower.is_char_boundary(search) {
                search += 1;
            }
            continue;
        }
        if !is_word(text[..start].chars().next_back()) && !is_word(text[end..].chars().next()) {
            out.push_str(&text[rest..start]);
            out.push_str(to);
            rest = end;
        }
        search = end;
    }
    out.push_str(&text[rest..]);
    out
}

/// One line of the model's words without decoration: markdown, quotes, a label it repeated.
fn tidy(line: &str) -> String {
    // Markdown, quotes and code-like marks a small model strays into.
    let line = line.replace(
        [
            '*', '#', '_', '"', '“', '”', '{', '}', '<', '>', '|', '=', '[', ']', '`',
        ],
        "",
    );
    let mut line = line.trim();
    for label in ["Text:", "Page text:", "Picture:", "Title:"] {
        if let Some(rest) = line.strip_prefix(label) {
            line = rest.trim();
        }
    }
    let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
    // A label the model wrote inside the line starts the next piece, not this one.
    let cut = ["Page ", "Picture "]
        .iter()
        .filter_map(|label| {
            line.match_indices(label)
                .find(|(at, _)| line[at + label.len()..].starts_with(|c: char| c.is_ascii_digit()))
                .map(|(at, _)| at)
        })
        .min();
    match cut {
        Some(at) => line[..at].trim_end_matches([' ', '|', '-']).to_owned(),
        None => line,
    }
}

/// `text` cut after its last whole sentence (a reply cut short by the token budget), or closed with
/// a full stop when it has no sentence end at all.
fn whole_sentences(text: &str) -> String {
    match text.rfind(['.', '!', '?']) {
        Some(end) => {
            let mut cut = text[..=end].to_owned();
            // A closing quote after the stop belongs to the sentence.
            if text[end + 1..].starts_with(['\'', '’']) {
                cut.push_str(
                    &text[end + 1
                        ..end + 1 + text[end + 1..].chars().next().map_or(0, char::len_utf8)],
                );
            }
            cut
        }
        None => format!("{}.", text.trim_end_matches([',', ';', ':', '-'])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idea(pronouns: Pronouns) -> StoryIdea {
        StoryIdea {
            idea: "Mia is scared of the bath: make her brave and funny".into(),
            child: Child {
                name: "Mia".into(),
                pronouns,
                companion: "Daddy".into(),
            },
            pages: 6,
        }
    }

    #[test]
    fn the_model_reads_a_stand_in_not_the_childs_name() {
        let [(_, system), (_, user)] = idea(Pronouns::She).messages();
        assert!(!system.contains("Mia") && !user.contains("Mia"), "{user}");
        assert!(user.contains("Lily is scared of the bath"), "{user}");
        assert!(user.contains("6 pages") && user.contains("Daddy"), "{user}");
        let story = WrittenStory {
            title: "Lily and the Bubbles".into(),
            pages: vec![WrittenPage {
                text: "Lily splashed. Lily's duck laughed.".into(),
                scene: "splashing Lily's duck in a bubble bath".into(),
            }],
        };
        let named = idea(Pronouns::She).named(&story);
        assert_eq!(named.title, "Mia and the Bubbles");
        assert_eq!(named.pages[0].text, "Mia splashed. Mia's duck laughed.");
        assert_eq!(
            named.pages[0].scene,
            "splashing the toddler's duck in a bubble bath"
        );
    }

    #[test]
    fn every_part_is_framed_in_order() {
        let parts = Part::all(2);
        assert_eq!(
            parts,
            [
                Part::Title,
                Part::Text(0),
                Part::Scene(0),
                Part::Text(1),
                Part::Scene(1)
            ]
        );
        let idea = idea(Pronouns::He);
        assert_eq!(idea.frame(Part::Text(1), false), "\n\nPage 2:");
        assert_eq!(idea.frame(Part::Text(1), true), "\n\nPage 2: Tom");
        assert_eq!(idea.frame(Part::Scene(0), false), "\nPicture 1: Tom is");
    }

    #[test]
    fn pages_are_checked_and_tidied() {
        let idea = idea(Pronouns::She);
        assert_eq!(
            idea.finish(
                Part::Text(0),
                " **Lily looked at the bath.** She was a little worried, and then",
                false
            ),
            Ok("Lily looked at the bath.".into())
        );
        assert_eq!(
            idea.finish(
                Part::Text(2),
                " She splashed and splashed!\nPicture 3:",
                false
            ),
            Ok("She splashed and splashed!".into())
        );
        assert!(
            idea.finish(Part::Text(0), " She splashed.", false)
                .unwrap_err()
                .contains("name")
        );
        assert_eq!(
            idea.finish(Part::Text(0), " splashed in the warm water", true),
            Ok("Lily splashed in the warm water.".into())
        );
        assert!(
            idea.finish(Part::Text(1), " The duck sang.", false)
                .unwrap_err()
                .contains("not about")
        );
        assert_eq!(
            idea.finish(
                Part::Text(3),
                " Lily met her future husband, a prince.",
                false
            ),
            Err("it has \"husband\" in it".into())
        );
        assert_eq!(
            idea.finish(Part::Scene(1), " splashing in a bubble bath.", false),
            Ok("splashing in a bubble bath".into())
        );
        assert_eq!(
            idea.finish(Part::Title, " \"Lily's Big Bath\"", false),
            Ok("Lily's Big Bath".into())
        );
        assert_eq!(
            idea.finish(Part::Title, " \n", false),
            Err("it is empty".into())
        );
        assert_eq!(
            idea.finish(
                Part::Text(0),
                " Lily loves the bath | Page 2: She splashed.",
                false
            ),
            Ok("Lily loves the bath.".into())
        );
    }

    #[test]
    fn the_list_finds_words_with_their_endings_and_phrases() {
        for (text, found) in [
            ("They were shooting stars", Some("shooting")),
            ("The knight stabbed it", Some("stabbed")),
            ("Two killers came", Some("killers")),
            ("Then they fell in love.", Some("fell in love")),
            ("Shut up, said the duck", Some("shut up")),
            ("A DEAD leaf", Some("dead")),
            (
                "The sun dried the towels and Lily died laughing",
                Some("died"),
            ),
            ("Lily hugged her teddy and laughed", None),
            ("She was a little bit scared, then brave", None),
            ("The shell was on the shore", None),
            ("Diego and the dice", None),
        ] {
            assert_eq!(unsuitable(text).as_deref(), found, "{text}");
        }
        assert!(unsuitable_words().contains(&"husband"));
        assert!(!unsuitable_words().contains(&"in love"));
    }

    #[test]
    fn any_text_the_model_writes_is_handled_without_a_panic() {
        let idea = idea(Pronouns::She);
        for written in [
            "",
            "\n",
            "İLily İ lily.",
            "Lily’s “duck” said ‘hi’!",
            "ß ẞ Lily ǅ",
            "...!!!???",
            "Page 2",
            "Picture 9: x",
            "Lily Lily Lily",
            "{name} <b> a => b || c",
            "\u{FFFD}\u{FFFD}",
            "日本語の文。",
            "Lily'",
        ] {
            for part in Part::all(2) {
                for naming in [false, true] {
                    let _ = idea.finish(part, written, naming);
                    let _ = idea.draft(part, written, naming);
                }
            }
            let _ = unsuitable(written);
            let _ = replace_word(written, "lily", "Mia");
            let _ = replace_word(written, "İ", "Mia");
        }
    }

    #[test]
    fn an_idea_is_checked_before_anything_is_written() {
        let mut asked = idea(Pronouns::They);
        assert_eq!(asked.check(), Ok(()));
        asked.pages = 40;
        assert!(asked.check().unwrap_err().contains("2 to 12"));
        asked.pages = 6;
        asked.idea = "a fight with a sword".into();
        assert!(asked.check().unwrap_err().contains("\"fight\""));
        asked.idea = "   ".into();
        assert!(asked.check().is_err());
    }

    #[test]
    fn a_written_story_starts_a_book_like_a_template() {
        let story = WrittenStory {
            title: "Mia {and} the Bath".into(),
            pages: vec![WrittenPage {
                text: "Mia splashed.".into(),
                scene: "in the bath".into(),
            }],
        };
        let template = story.template();
        assert_eq!(template.title, "Mia and the Bath");
        assert_eq!(template.pages.len(), 1);
        assert_eq!(template.pages[0].scene, "in the bath");
    }
}
