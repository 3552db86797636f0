"""Unlearning methods behind one catalog (:mod:`iau_cli.core.methods.catalog`): the names, options
and entry points are read without torch; a method's module is imported when it first runs."""

from iau_cli.core.methods.catalog import CATALOG, MethodName, MethodSpec, get_method, options_help, retrains

__all__ = ["CATALOG", "MethodName", "MethodSpec", "get_method", "options_help", "retrains"]
