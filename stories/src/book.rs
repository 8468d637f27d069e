//! The book model: a book and its set-up, its pages and the pictures drawn for them, its cast,
//! and the look and drawing settings stored with it so it re-renders the same.

use serde::{Deserialize, Serialize};

use crate::templates::{Child, Template, non_empty};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{mia, setup};
    use crate::templates::templates;

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
}
