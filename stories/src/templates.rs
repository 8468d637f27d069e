//! The built-in story templates (`templates.json`) and the child who fills their placeholders:
//! name, pronouns, companion.

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
    pub(crate) fn forms(self) -> [&'static str; 3] {
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

pub(crate) fn non_empty<'a>(value: &'a str, otherwise: &'a str) -> &'a str {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::book::{Book, Style};
    use crate::fixtures::{mia, setup};

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
}
