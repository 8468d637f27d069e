//! What the unit tests share: a child to write about and a book set-up to draw with.

use crate::book::{BookSetup, Drawing, Style};
use crate::templates::{Child, Pronouns};

fn drawing() -> Drawing {
    Drawing {
        model: "stabilityai--sd-turbo--main".into(),
        steps: 1,
        size: 512,
        variants: 2,
        seed: 7,
    }
}

pub(crate) fn setup(
    child: Child,
    avatar: Option<String>,
    character: String,
    style: Style,
) -> BookSetup {
    BookSetup {
        child,
        avatar,
        character,
        style,
        drawing: drawing(),
    }
}

pub(crate) fn mia() -> Child {
    Child {
        name: "Mia".into(),
        pronouns: Pronouns::She,
        companion: "Daddy".into(),
    }
}
