"""The registry: one line per method."""

from iau_cli.core.methods import MethodName, descent, fisher, iau, influence, retrain
from iau_cli.core.methods.base import MethodSpec

REGISTRY: dict[MethodName, MethodSpec] = {
    MethodName.IAU: iau.SPEC,
    MethodName.RETRAIN: retrain.SPEC,
    MethodName.FINETUNE: descent.FINETUNE,
    MethodName.GRADIENT_ASCENT: descent.GRADIENT_ASCENT,
    MethodName.NEGGRAD_PLUS: descent.NEGGRAD_PLUS,
    MethodName.INFLUENCE: influence.SPEC,
    MethodName.FISHER: fisher.SPEC,
}
