"""The gRPC edge of the identity service: conversion, authorization table and servicer."""
