"""The registry: one line per method."""

from iau_cli.methods import MethodName, iau, retrain
from iau_cli.methods.base import MethodSpec

REGISTRY: dict[MethodName, MethodSpec] = {
    MethodName.IAU: iau.SPEC,
    MethodName.RETRAIN: retrain.SPEC,
}
