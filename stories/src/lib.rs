//! Books: the built-in story templates, a book's pages, and the picture prompt of each page.
//!
//! Consistency across pages comes from the prompt: every page's picture is drawn from the same
//! avatar token, the same character card (hair, clothes: set once per book) and the same style,
//! with only the scene changing; and from seeds stored per page, so a book re-renders the same.

pub mod photo_check;

use serde::{Deserialize, Serialize};

/// A story to start a book from. Text may hold the placeholders of [`Child::fill`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub id: String,
    pub title: String,
    pub summary: String,
    pub pages: Vec<TemplatePage>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplatePage {
    pub text: String,
    /// What the picture shows, without the child's description (that comes from the book).
    pub scene: String,
    /// The child is on their own in this picture (asleep, in the bath): the book's cast stays
    /// out of it unless the parent ticks them in. Elsewhere the whole cast comes along.
    #[serde(default)]
    pub alone: bool,
}

/// The built-in templates.
pub fn templates() -> Vec<Template> {
    serde_json::from_str(include_str!("../templates.json")).expect("templates.json is valid")
}

/// How the story speaks of the child.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pronouns {
    She,
    He,
    #[default]
    They,
}

impl Pronouns {
    pub const ALL: [Pronouns; 3] = [Pronouns::She, Pronouns::He, Pronouns::They];

    /// Subject, object, possessive.
    fn forms(self) -> [&'static str; 3] {
        match self {
            Pronouns::She => ["she", "her", "her"],
            Pronouns::He => ["he", "him", "his"],
            Pronouns::They => ["they", "them", "their"],
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Pronouns::She => "she / her",
            Pronouns::He => "he / him",
            Pronouns::They => "they / them",
        }
    }

    pub fn key(self) -> &'static str {
        self.forms()[0]
    }

    pub fn from_key(key: &str) -> Pronouns {
        Pronouns::ALL
            .into_iter()
            .find(|pronouns| pronouns.key() == key)
            .unwrap_or_default()
    }
}

/// Who the story is about: what fills the templates' placeholders.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Child {
    pub name: String,
    pub pronouns: Pronouns,
    /// Who comes along: "Mummy", "Grandpa", "Teddy".
    pub companion: String,
}

impl Child {
    /// Replaces `{name}`, `{companion}`, `{they}`, `{them}`, `{their}` (and `{They}`, `{Them}`,
    /// `{Their}` at the start of a sentence). Templates are written in the past tense, so the
    /// verbs agree with any pronoun.
    pub fn fill(&self, text: &str) -> String {
        let [subject, object, possessive] = self.pronouns.forms();
        let name = non_empty(&self.name, "our little one");
        let companion = non_empty(&self.companion, "Teddy");
        [
            ("{name}", name.to_owned()),
            ("{companion}", companion.to_owned()),
            ("{they}", subject.to_owned()),
            ("{them}", object.to_owned()),
            ("{their}", possessive.to_owned()),
            ("{They}", capitalise(subject)),
            ("{Them}", capitalise(object)),
            ("{Their}", capitalise(possessive)),
        ]
        .iter()
        .fold(text.to_owned(), |text, (placeholder, value)| {
            text.replace(placeholder, value)
        })
    }
}

fn non_empty<'a>(value: &'a str, otherwise: &'a str) -> &'a str {
    match value.trim() {
        "" => otherwise,
        value => value,
    }
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The look of every picture in a book.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Style {
    #[default]
    Watercolour,
    Crayon,
    Soft3d,
    FlatVector,
}

impl Style {
    pub const ALL: [Style; 4] = [
        Style::Watercolour,
        Style::Crayon,
        Style::Soft3d,
        Style::FlatVector,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Style::Watercolour => "Watercolour",
            Style::Crayon => "Crayon",
            Style::Soft3d => "Soft 3D",
            Style::FlatVector => "Flat shapes",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Style::Watercolour => "watercolour",
            Style::Crayon => "crayon",
            Style::Soft3d => "soft_3d",
            Style::FlatVector => "flat_vector",
        }
    }

    pub fn from_key(key: &str) -> Style {
        Style::ALL
            .into_iter()
            .find(|style| style.key() == key)
            .unwrap_or_default()
    }

    /// Words before and after the subject in the prompt.
    fn words(self) -> (&'static str, &'static str) {
        match self {
            Style::Watercolour => (
                "a children's picture book watercolour illustration of",
                "soft watercolour, gentle pastel colours, white paper texture",
            ),
            Style::Crayon => (
                "a children's crayon drawing of",
                "wax crayon texture, bright colours, hand-drawn",
            ),
            Style::Soft3d => (
                "a soft 3D animated film still of",
                "rounded shapes, soft lighting, warm colours",
            ),
            Style::FlatVector => (
                "a flat vector picture book illustration of",
                "simple shapes, bold flat colours, clean lines",
            ),
        }
    }
}

/// A picture drawn for a page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub seed: u64,
    /// The PNG's file name in the book's folder.
    pub file: String,
    /// How much it looks like the child, as the on-device face matcher saw it; `None`: not
    /// scored (the child's avatar has no face reference, or the picture predates scoring).
    #[serde(default)]
    pub likeness: Option<PictureLikeness>,
}

/// The face matcher's view of one picture.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PictureLikeness {
    /// Faces found (0: none — common in stylised pictures; then there is no score).
    pub faces: usize,
    /// The best face's similarity to the child's photos (-1 to 1), when a face was found.
    pub score: Option<f64>,
}

/// How a likeness score reads to a parent. The bands come from the measurement in
/// docs/benchmarks.md ("Likeness score"): the same adult face under crops, a flip, light changes
/// and half the size scored 0.957 or more, two different adults 0.894 at most (the descriptors
/// are not centred, so even strangers score high). "Looks like" sits just under the first, "a
/// little like" just above the second. They rank a page's pictures; they do not say who anyone
/// is (toddlers' faces are much harder, and two adults are a thin sample).
pub const CLOSE_LIKENESS: f64 = 0.95;
pub const SOME_LIKENESS: f64 = 0.91;

/// What the Avatars screen says about an avatar's face after learning: its preview's score,
/// and which photos showed no face. `None`: nothing to say (an imported avatar, or one from
/// before the face matcher).
pub fn avatar_face_words(avatar: &Avatar) -> Option<String> {
    let name = &avatar.name;
    let photos = match avatar.photos_without_face.as_slice() {
        [] => String::new(),
        [one] => format!(
            " No face was found in photo {}, so it did not count.",
            one + 1
        ),
        many => format!(
            " No face was found in photos {}, so they did not count.",
            many.iter()
                .map(|index| (index + 1).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    if avatar.face.is_none() {
        return (!avatar.photos_without_face.is_empty()).then(|| {
            format!(
                "The face finder found no face in {name}'s photos, so pictures get no likeness score. Photos where the face is clear and towards the camera help."
            )
        });
    }
    let preview = match avatar.preview_likeness {
        Some(score) => format!("Its preview {}.", looks_like(name, score)),
        None => "Its preview shows no face the face finder could see.".into(),
    };
    Some(format!("{preview}{photos}"))
}

/// Words for a picture's likeness to `name`: what the page shows under its picture.
pub fn likeness_words(name: &str, likeness: &PictureLikeness) -> String {
    match likeness.score {
        None => "No face found in this picture, so no likeness score".into(),
        Some(score) => {
            let phrase = looks_like(name, score);
            let mut letters = phrase.chars();
            letters
                .next()
                .map(|first| first.to_uppercase().chain(letters).collect())
                .unwrap_or_default()
        }
    }
}

/// "looks like Mia", "looks a little like Mia" or "does not look much like Mia".
fn looks_like(name: &str, score: f64) -> String {
    if score >= CLOSE_LIKENESS {
        format!("looks like {name}")
    } else if score >= SOME_LIKENESS {
        format!("looks a little like {name}")
    } else {
        format!("does not look much like {name}")
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub text: String,
    pub scene: String,
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// The variant the book shows.
    #[serde(default)]
    pub chosen: Option<usize>,
    /// A locked page keeps its picture when the book is illustrated again.
    #[serde(default)]
    pub locked: bool,
    /// Which of the book's [`Book::cast`] are in this picture (indices), besides the child, who
    /// is in every one; `None`: the whole cast, up to [`MAX_ON_A_PAGE`] characters.
    #[serde(default)]
    pub cast: Option<Vec<usize>>,
}

/// At most this many characters in one picture, the child included: distilled models lose
/// who is who beyond that.
pub const MAX_ON_A_PAGE: usize = 3;

/// Who a cast member is to the child.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Sibling,
    Friend,
    Pet,
}

impl Role {
    /// The class word a prompt names them by, after their token.
    pub fn word(self) -> &'static str {
        match self {
            Role::Sibling => "child",
            Role::Friend => "child",
            Role::Pet => "pet",
        }
    }
}

/// Someone besides the child in a book: a big sister, a friend, the family dog. With an avatar
/// they are drawn from it (its token); without one, from their card alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CastMember {
    pub name: String,
    pub role: Role,
    /// Their avatar's token, e.g. `<leo>`.
    #[serde(default)]
    pub avatar: Option<String>,
    /// Their character card: hair, clothes, fur — the same words on every page.
    #[serde(default)]
    pub card: String,
}

impl CastMember {
    /// How a prompt names them: token and class word (or their name), then their card.
    fn subject(&self) -> String {
        let who = match &self.avatar {
            Some(token) => format!("{token} {}", self.role.word()),
            None => match self.role {
                Role::Pet => format!("a {}", self.role.word()),
                _ => "a child".to_owned(),
            },
        };
        match self.card.trim() {
            "" => who,
            card => format!("{who} ({card})"),
        }
    }
}

impl Page {
    pub fn picture(&self) -> Option<&Variant> {
        self.chosen.and_then(|index| self.variants.get(index))
    }

    /// Among the variants from `first` on (one round of drawing), the one that looks most like
    /// the child; the first of them where none has a score.
    pub fn most_alike_from(&self, first: usize) -> Option<usize> {
        let round = self.variants.iter().enumerate().skip(first);
        round
            .clone()
            .filter_map(|(index, variant)| Some((index, variant.likeness?.score?)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(index, _)| index)
            .or_else(|| round.map(|(index, _)| index).next())
    }
}

/// How pictures are drawn; stored with the book so it re-renders identically.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Drawing {
    /// The model's store folder.
    pub model: String,
    pub steps: usize,
    pub size: usize,
    /// Variants drawn per page.
    pub variants: usize,
    /// Page `p`'s variant `v` is drawn with seed `book seed + 1000·p + v`.
    pub seed: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Book {
    pub id: String,
    pub title: String,
    /// The template it started from, if any.
    #[serde(default)]
    pub template: Option<String>,
    pub child: Child,
    /// The avatar's token, e.g. `<mia>`; a book without one draws "a toddler".
    #[serde(default)]
    pub avatar: Option<String>,
    /// Hair, clothes: the same words on every page.
    pub character: String,
    pub style: Style,
    pub drawing: Drawing,
    pub pages: Vec<Page>,
    /// Milliseconds since 1970, for sorting the shelf.
    pub updated: f64,
    /// A picture-style LoRA the parent added (a watercolour look), stored beside the book as
    /// [`Book::STYLE_LORA_FILE`]; every page is drawn with it.
    #[serde(default)]
    pub style_lora: Option<StyleLora>,
    /// Who else is in the book besides the child (books before casts have none).
    #[serde(default)]
    pub cast: Vec<CastMember>,
}

/// A book's style LoRA: what the parent's file was called, and how strongly it draws.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StyleLora {
    pub name: String,
    /// 1: as its maker trained it.
    pub scale: f64,
}

/// What the parent chooses once per book.
#[derive(Clone, Debug, PartialEq)]
pub struct BookSetup {
    pub child: Child,
    pub avatar: Option<String>,
    pub character: String,
    pub style: Style,
    pub drawing: Drawing,
}

impl Book {
    /// The style LoRA's file in the book's folder.
    pub const STYLE_LORA_FILE: &str = "style-lora.safetensors";

    /// A new book from `template` (placeholders filled), or a blank one with a single page.
    pub fn new(id: String, template: Option<&Template>, setup: BookSetup, now: f64) -> Book {
        let BookSetup {
            child,
            avatar,
            character,
            style,
            drawing,
        } = setup;
        let (title, pages) = match template {
            Some(template) => (
                child.fill(&template.title),
                template
                    .pages
                    .iter()
                    .map(|page| Page {
                        text: child.fill(&page.text),
                        scene: child.fill(&page.scene),
                        cast: page.alone.then(Vec::new),
                        ..Page::default()
                    })
                    .collect(),
            ),
            None => (
                format!("A story about {}", non_empty(&child.name, "our little one")),
                vec![Page::default()],
            ),
        };
        Book {
            id,
            title,
            template: template.map(|template| template.id.clone()),
            child,
            avatar,
            character,
            style,
            drawing,
            pages,
            updated: now,
            style_lora: None,
            cast: Vec::new(),
        }
    }

    /// The cast members in page `index`'s picture: the page's choice (or the whole cast), in
    /// cast order, at most [`MAX_ON_A_PAGE`] − 1 beside the child.
    pub fn cast_on_page(&self, index: usize) -> Vec<&CastMember> {
        let chosen = self.pages.get(index).and_then(|page| page.cast.as_ref());
        let mut members: Vec<&CastMember> = match chosen {
            Some(indices) => {
                let mut indices = indices.clone();
                indices.sort_unstable();
                indices.dedup();
                indices.iter().filter_map(|&i| self.cast.get(i)).collect()
            }
            None => self.cast.iter().collect(),
        };
        members.truncate(MAX_ON_A_PAGE - 1);
        members
    }

    /// Every avatar token the book draws with: the child's, then the cast's, once each.
    pub fn avatars(&self) -> Vec<String> {
        let mut tokens: Vec<String> = self.avatar.iter().cloned().collect();
        for token in self.cast.iter().filter_map(|member| member.avatar.clone()) {
            if !tokens.contains(&token) {
                tokens.push(token);
            }
        }
        tokens
    }

    /// Page `index`'s picture prompt: style, the avatar token with the character card, the scene.
    pub fn prompt(&self, index: usize) -> String {
        let (before, after) = self.style.words();
        let subject = match &self.avatar {
            Some(token) => format!("{token} toddler"),
            None => "a toddler".to_owned(),
        };
        let character = self.character.trim();
        let scene = self.pages.get(index).map_or("", |page| page.scene.trim());
        // The others follow the child and the child's card, each with their own card.
        let others: Vec<String> = self
            .cast_on_page(index)
            .into_iter()
            .map(CastMember::subject)
            .collect();
        let others = match others.as_slice() {
            [] => String::new(),
            [one] => format!("with {one}"),
            [first @ .., last] => format!("with {} and {last}", first.join(", ")),
        };
        [
            format!("{before} {subject}"),
            character.to_owned(),
            others,
            scene.to_owned(),
            after.to_owned(),
        ]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
    }

    /// The seed of page `index`'s variant `variant`.
    pub fn seed(&self, index: usize, variant: usize) -> u64 {
        self.drawing
            .seed
            .wrapping_add(1000 * index as u64)
            .wrapping_add(variant as u64)
    }

    /// The PNG file name of page `index`'s variant `variant`.
    pub fn picture_file(index: usize, variant: usize) -> String {
        format!("page-{index:02}-{variant}.png")
    }

    /// Pages still to draw: not locked, and without a chosen picture unless `redraw`.
    pub fn pages_to_draw(&self, redraw: bool) -> Vec<usize> {
        self.pages
            .iter()
            .enumerate()
            .filter(|(_, page)| !page.locked && (redraw || page.picture().is_none()))
            .map(|(index, _)| index)
            .collect()
    }
}

/// An avatar as the shelf lists it (stored beside its file as `avatar.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Avatar {
    /// What the parent calls it: "Mia".
    pub name: String,
    /// The placeholder the prompts use: `<mia>`.
    pub token: String,
    pub photos: usize,
    pub steps: usize,
    pub resolution: usize,
    /// `None` until training finished.
    #[serde(default)]
    pub eval_loss_before: Option<f64>,
    #[serde(default)]
    pub eval_loss_after: Option<f64>,
    pub updated: f64,
    /// The rank of the avatar's LoRA ("stronger likeness", pivotal tuning); 0: its vectors
    /// alone (every avatar before it existed).
    #[serde(default)]
    pub lora_rank: usize,
    /// The face matcher's reference: the mean descriptor of the photos' faces (`None`: no
    /// photo showed a face it could find, or the avatar predates it).
    #[serde(default)]
    pub face: Option<Vec<f32>>,
    /// Photos (by their order) in which no face was found.
    #[serde(default)]
    pub photos_without_face: Vec<usize>,
    /// The last preview's likeness score, when it had a face.
    #[serde(default)]
    pub preview_likeness: Option<f64>,
}

impl Avatar {
    /// A token for `name`: `<mia>` from "Mia", letters and digits only, `<kid>` when none;
    /// `taken` tokens get a number (`<mia2>`), so siblings with one name stay apart.
    pub fn token_for(name: &str, taken: &[String]) -> String {
        let base: String = name
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .flat_map(char::to_lowercase)
            .take(16)
            .collect();
        let base = if base.is_empty() { "kid".into() } else { base };
        let mut token = format!("<{base}>");
        let mut number = 2;
        while taken.contains(&token) {
            token = format!("<{base}{number}>");
            number += 1;
        }
        token
    }

    /// Whether it has finished learning (or was imported) and can draw a book.
    pub fn is_ready(&self) -> bool {
        self.eval_loss_after.is_some()
    }

    /// How training went, in words a parent reads at a glance. The paired evaluation loss drops
    /// only a few percent even when the likeness is good (most of a denoising loss is noise the
    /// avatar cannot explain), so the bands are wide and no number is shown.
    pub fn progress_words(&self) -> String {
        let (Some(before), Some(after)) = (self.eval_loss_before, self.eval_loss_after) else {
            return "Not finished learning yet.".to_owned();
        };
        if before <= 0.0 {
            return match self.lora_rank {
                0 => "Imported from a file.".to_owned(),
                _ => "Imported from a file, with the stronger likeness.".to_owned(),
            };
        }
        let learned = format!(
            "Ready: learned from {} photo{} in {} steps{}.",
            self.photos,
            if self.photos == 1 { "" } else { "s" },
            self.steps,
            if self.lora_rank > 0 {
                ", with the stronger likeness"
            } else {
                ""
            }
        );
        let gain = (before - after) / before;
        let verdict = if gain >= 0.05 {
            "It matches the photos clearly better than where it started."
        } else if gain >= 0.005 {
            "It matches the photos a little better than where it started; more learning steps can help."
        } else {
            "It has not changed much from where it started yet: more learning steps, or clearer photos, can help."
        };
        format!("{learned} {verdict}")
    }
}

/// The avatar a new book most likely stars, among `avatars` (newest first): the one named like
/// the child, else the only one, else the newest. Avatars still learning are never chosen.
pub fn likely_avatar<'a>(avatars: &'a [Avatar], child_name: &str) -> Option<&'a Avatar> {
    let ready: Vec<&Avatar> = avatars.iter().filter(|avatar| avatar.is_ready()).collect();
    let wanted = child_name.trim();
    ready
        .iter()
        .find(|avatar| !wanted.is_empty() && avatar.name.trim().eq_ignore_ascii_case(wanted))
        .or_else(|| ready.iter().max_by(|a, b| a.updated.total_cmp(&b.updated)))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drawing() -> Drawing {
        Drawing {
            model: "stabilityai--sd-turbo--main".into(),
            steps: 1,
            size: 512,
            variants: 2,
            seed: 7,
        }
    }

    fn setup(child: Child, avatar: Option<String>, character: String, style: Style) -> BookSetup {
        BookSetup {
            child,
            avatar,
            character,
            style,
            drawing: drawing(),
        }
    }

    fn mia() -> Child {
        Child {
            name: "Mia".into(),
            pronouns: Pronouns::She,
            companion: "Daddy".into(),
        }
    }

    #[test]
    fn there_are_eight_templates_of_six_to_twelve_pages() {
        let templates = templates();
        assert!(templates.len() >= 8);
        for template in &templates {
            assert!(
                (6..=12).contains(&template.pages.len()),
                "{} has {} pages",
                template.id,
                template.pages.len()
            );
        }
    }

    #[test]
    fn every_placeholder_in_the_templates_is_filled() {
        for template in templates() {
            for pronouns in Pronouns::ALL {
                let child = Child { pronouns, ..mia() };
                let book = Book::new(
                    "b".into(),
                    Some(&template),
                    setup(child, None, String::new(), Style::Crayon),
                    0.0,
                );
                for text in std::iter::once(&book.title)
                    .chain(book.pages.iter().flat_map(|page| [&page.text, &page.scene]))
                {
                    assert!(
                        !text.contains('{') && !text.contains('}'),
                        "{}: {text}",
                        template.id
                    );
                }
            }
        }
    }

    #[test]
    fn pronouns_and_names_fill_in() {
        let text = "{They} saw {companion}. {name} waved {their} hand at {them}.";
        assert_eq!(
            mia().fill(text),
            "She saw Daddy. Mia waved her hand at her."
        );
        let sam = Child {
            name: "Sam".into(),
            pronouns: Pronouns::They,
            companion: String::new(),
        };
        assert_eq!(
            sam.fill(text),
            "They saw Teddy. Sam waved their hand at them."
        );
    }

    #[test]
    fn the_prompt_keeps_token_character_and_style_on_every_page() {
        let template = &templates()[0];
        let book = Book::new(
            "b".into(),
            Some(template),
            setup(
                mia(),
                Some("<mia>".into()),
                "curly brown hair, yellow raincoat".into(),
                Style::Watercolour,
            ),
            0.0,
        );
        for index in 0..book.pages.len() {
            let prompt = book.prompt(index);
            assert!(
                prompt.starts_with("a children's picture book watercolour illustration of <mia> toddler, curly brown hair, yellow raincoat, "),
                "{prompt}"
            );
            assert!(prompt.contains(book.pages[index].scene.as_str()));
        }
        assert_eq!(book.seed(2, 1), 7 + 2001);
    }

    fn leo() -> CastMember {
        CastMember {
            name: "Leo".into(),
            role: Role::Sibling,
            avatar: Some("<leo>".into()),
            card: "short blond hair, red jumper".into(),
        }
    }

    #[test]
    fn a_page_names_each_character_with_token_and_card() {
        let mut book = Book::new(
            "b".into(),
            Some(&templates()[0]),
            setup(
                mia(),
                Some("<mia>".into()),
                "curly brown hair".into(),
                Style::Watercolour,
            ),
            0.0,
        );
        let dog = CastMember {
            name: "Biscuit".into(),
            role: Role::Pet,
            avatar: None,
            card: "small brown spaniel".into(),
        };
        let extra = CastMember {
            name: "Ava".into(),
            role: Role::Friend,
            avatar: Some("<ava>".into()),
            card: String::new(),
        };
        book.cast = vec![leo(), dog, extra];
        book.pages[1].cast = Some(vec![1]);
        book.pages[2].cast = Some(vec![]);
        // The whole cast by default, but never more than three in a picture.
        assert!(
            book.prompt(0).starts_with(
                "a children's picture book watercolour illustration of <mia> toddler, curly brown hair, \
                 with <leo> child (short blond hair, red jumper) and a pet (small brown spaniel), "
            ),
            "{}",
            book.prompt(0)
        );
        assert!(
            book.prompt(1)
                .contains(", with a pet (small brown spaniel), ")
        );
        assert!(!book.prompt(2).contains("with "), "{}", book.prompt(2));
        assert_eq!(book.avatars(), ["<mia>", "<leo>", "<ava>"]);
        // The seed does not depend on who is in the picture.
        assert_eq!(book.seed(1, 0), 7 + 1000);
    }

    #[test]
    fn books_from_before_casts_open_with_no_cast() {
        let mut book = Book::new(
            "b".into(),
            Some(&templates()[0]),
            setup(
                mia(),
                Some("<mia>".into()),
                "curly brown hair".into(),
                Style::Crayon,
            ),
            0.0,
        );
        // A book made before casts: no page said who was in it.
        book.pages.iter_mut().for_each(|page| page.cast = None);
        let mut stored = serde_json::to_value(&book).unwrap();
        let object = stored.as_object_mut().unwrap();
        object.remove("cast");
        object.remove("style_lora");
        for page in object["pages"].as_array_mut().unwrap() {
            page.as_object_mut().unwrap().remove("cast");
        }
        let read: Book = serde_json::from_value(stored).unwrap();
        assert_eq!(read, book);
        assert_eq!(read.prompt(0), book.prompt(0));
        assert!(read.cast.is_empty() && read.pages.iter().all(|page| page.cast.is_none()));
    }

    #[test]
    fn the_cast_stays_out_of_the_pages_a_template_keeps_for_the_child_alone() {
        let bath = templates()
            .into_iter()
            .find(|template| template.id == "bath-time")
            .expect("the bath-time template");
        let mut book = Book::new(
            "b".into(),
            Some(&bath),
            setup(mia(), Some("<mia>".into()), String::new(), Style::Crayon),
            0.0,
        );
        book.cast.push(CastMember {
            name: "Leo".into(),
            role: Role::Sibling,
            avatar: Some("<leo>".into()),
            card: "red jumper".into(),
        });
        // In the bath she is on her own; laughing beside the tub, her brother can be there.
        assert!(bath.pages[2].alone && !bath.pages[4].alone);
        assert!(!book.prompt(2).contains("<leo>"), "{}", book.prompt(2));
        assert!(
            book.prompt(4).contains("with <leo> child (red jumper)"),
            "{}",
            book.prompt(4)
        );
        // The parent can still tick him in.
        book.pages[2].cast = Some(vec![0]);
        assert!(book.prompt(2).contains("<leo>"));
    }

    #[test]
    fn a_blank_book_has_one_page_and_no_avatar_draws_a_toddler() {
        let book = Book::new(
            "b".into(),
            None,
            setup(mia(), None, String::new(), Style::Crayon),
            0.0,
        );
        assert_eq!(book.pages.len(), 1);
        assert_eq!(
            book.prompt(0),
            "a children's crayon drawing of a toddler, wax crayon texture, bright colours, hand-drawn"
        );
    }

    #[test]
    fn locked_and_drawn_pages_are_skipped() {
        let mut book = Book::new(
            "b".into(),
            Some(&templates()[1]),
            setup(mia(), None, String::new(), Style::Crayon),
            0.0,
        );
        book.pages[0].variants.push(Variant {
            seed: 1,
            file: Book::picture_file(0, 0),
            likeness: None,
        });
        book.pages[0].chosen = Some(0);
        book.pages[1].locked = true;
        let all: Vec<usize> = (2..book.pages.len()).collect();
        assert_eq!(book.pages_to_draw(false), all);
        assert_eq!(book.pages_to_draw(true)[0], 0);
    }

    fn variant(seed: u64, score: Option<Option<f64>>) -> Variant {
        Variant {
            seed,
            file: format!("{seed}.png"),
            likeness: score.map(|score| PictureLikeness {
                faces: usize::from(score.is_some()),
                score,
            }),
        }
    }

    #[test]
    fn the_most_alike_variant_of_a_round_is_the_default() {
        let page = Page {
            variants: vec![
                variant(1, Some(Some(0.99))), // an earlier round: not a candidate
                variant(2, Some(Some(0.80))),
                variant(3, Some(None)), // no face found
                variant(4, Some(Some(0.93))),
                variant(5, None), // not scored
            ],
            ..Page::default()
        };
        assert_eq!(page.most_alike_from(1), Some(3));
        assert_eq!(page.most_alike_from(4), Some(4), "none scored: the first");
        assert_eq!(page.most_alike_from(5), None);
        // A picture stored before scoring existed still reads.
        let old: Variant =
            serde_json::from_str(r#"{"seed":7,"file":"p.png"}"#).expect("old variant");
        assert_eq!(old.likeness, None);
    }

    #[test]
    fn likeness_reads_in_plain_words_and_never_invents_a_number() {
        let with = |score| PictureLikeness {
            faces: 1,
            score: Some(score),
        };
        assert_eq!(likeness_words("Mia", &with(0.96)), "Looks like Mia");
        assert_eq!(
            likeness_words("Mia", &with(0.93)),
            "Looks a little like Mia"
        );
        // A stranger's face scored up to 0.894 against another adult's photo.
        assert_eq!(
            likeness_words("Mia", &with(0.89)),
            "Does not look much like Mia"
        );
        let faceless = PictureLikeness {
            faces: 0,
            score: None,
        };
        assert!(likeness_words("Mia", &faceless).starts_with("No face found"));
    }

    fn avatar(name: &str, updated: f64, ready: bool) -> Avatar {
        Avatar {
            name: name.into(),
            token: Avatar::token_for(name, &[]),
            photos: 5,
            steps: 300,
            resolution: 512,
            eval_loss_before: ready.then_some(0.2),
            eval_loss_after: ready.then_some(0.19),
            updated,
            lora_rank: 0,
            face: None,
            photos_without_face: Vec::new(),
            preview_likeness: None,
        }
    }

    #[test]
    fn a_new_book_stars_the_avatar_named_like_the_child_else_the_newest() {
        let noah = avatar("Noah", 1.0, true);
        let mia = avatar("Mia", 2.0, true);
        let learning = avatar("Leo", 3.0, false);
        let all = [learning.clone(), mia.clone(), noah.clone()];
        assert_eq!(likely_avatar(&all, "noah "), Some(&noah));
        assert_eq!(likely_avatar(&all, ""), Some(&mia), "the newest ready one");
        assert_eq!(likely_avatar(&all, "Sam"), Some(&mia));
        assert_eq!(
            likely_avatar(&all, "Leo"),
            Some(&mia),
            "not one still learning"
        );
        assert_eq!(
            likely_avatar(std::slice::from_ref(&noah), "Sam"),
            Some(&noah)
        );
        assert_eq!(likely_avatar(&[learning], "Leo"), None);
        assert_eq!(likely_avatar(&[], "Mia"), None);
    }

    #[test]
    fn training_progress_is_said_in_words_without_numbers() {
        let mut mia = avatar("Mia", 1.0, true);
        for (after, phrase) in [
            (0.2, "has not changed much"),
            (0.1995, "has not changed much"),
            (0.198, "a little better"),
            (0.18, "clearly better"),
        ] {
            mia.eval_loss_after = Some(after);
            let words = mia.progress_words();
            assert!(
                words.starts_with("Ready: learned from 5 photos in 300 steps."),
                "{words}"
            );
            assert!(words.contains(phrase), "{after}: {words}");
            assert!(!words.contains('%') && !words.contains("0.0"), "{words}");
        }
        mia.eval_loss_before = Some(0.0);
        assert_eq!(mia.progress_words(), "Imported from a file.");
        mia.lora_rank = 4;
        assert_eq!(
            mia.progress_words(),
            "Imported from a file, with the stronger likeness."
        );
        mia.lora_rank = 0;
        mia.eval_loss_after = None;
        assert_eq!(mia.progress_words(), "Not finished learning yet.");
    }

    #[test]
    fn tokens_are_simple_and_unique() {
        assert_eq!(Avatar::token_for("Mia Rose", &[]), "<miarose>");
        assert_eq!(Avatar::token_for("Mia", &["<mia>".into()]), "<mia2>");
        assert_eq!(Avatar::token_for("😀", &[]), "<kid>");
        assert_eq!(Style::from_key(Style::Soft3d.key()), Style::Soft3d);
    }
}
