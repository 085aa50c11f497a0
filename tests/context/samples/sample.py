"""Sample module for the query tests."""
import os
from collections import OrderedDict as OD


def top_level(x):
    return x + 1


@staticmethod
def decorated():
    pass


class Shape:
    def area(self):
        def inner():
            return 0
        return inner()


class Square(Shape):
    pass


SEPARATORS = (os.sep, OD)
