"""robustpath: how much does a pathology model's performance fall on imperfect slide images?"""
__version__ = "0.1.0"
